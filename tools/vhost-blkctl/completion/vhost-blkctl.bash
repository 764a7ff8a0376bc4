# bash completion for vhost-blkctl(8)                    -*- shell-script -*-
# SPDX-License-Identifier: GPL-2.0

_vhost_blkctl_run_dir()
{
	local i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		if [[ ${COMP_WORDS[i]} == --run-dir ]]; then
			echo "${COMP_WORDS[i + 1]}"
			return
		fi
	done
	echo "${VHOST_BLKCTL_RUN_DIR:-/run/vhost-blk}"
}

_vhost_blkctl_disks()
{
	local dir f
	dir=$(_vhost_blkctl_run_dir)
	for f in "$dir"/*.sock; do
		[[ -S $f ]] || continue
		f=${f##*/}
		echo "${f%.sock}"
	done
}

_vhost_blkctl()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="serve list status workers assign poll info"
	local cmd="" i
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--run-dir) ((i++)) ;;
		serve | list | status | workers | assign | poll | info)
			cmd=${words[i]}
			break
			;;
		esac
	done

	case $prev in
	--run-dir)
		COMPREPLY=($(compgen -d -- "$cur"))
		return
		;;
	--backend)
		COMPREPLY=($(compgen -f -- "${cur:-/dev/}"))
		return
		;;
	--socket | --device | --qmp)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--policy)
		COMPREPLY=($(compgen -W "single per-vq round-robin:" -- "$cur"))
		[[ ${COMPREPLY[0]} == round-robin: ]] && compopt -o nospace 2>/dev/null
		return
		;;
	--socket-owner)
		COMPREPLY=($(compgen -u -- "$cur"))
		return
		;;
	--socket-group)
		COMPREPLY=($(compgen -g -- "$cur"))
		return
		;;
	--name | --serial | --queues | --workers | --map | --count | --vq | --worker | --id | \
		--poll-us | --us | --cpus | --worker-cpus | \
		--socket-mode)
		return
		;;
	--block-size)
		COMPREPLY=($(compgen -W "512 1024 2048 4096" -- "$cur"))
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$commands --run-dir --version --help" -- "$cur"))
		return
	fi

	local opts
	case $cmd in
	serve)
		opts="--backend --socket --name --serial --queues --workers --worker-per-vq
		      --map --worker-cpus --read-only --block-size --poll-us --socket-owner --socket-group --socket-mode
		      --device --run-dir --help"
		;;
	list) opts="--json --run-dir --help" ;;
	info) opts="--json --device --help" ;;
	status) opts="--qmp --id --json --run-dir --help" ;;
	workers) opts="--qmp --id --count --cpus --worker --json --run-dir --help" ;;
	assign) opts="--qmp --id --vq --worker --policy --json --run-dir --help" ;;
	poll) opts="--qmp --id --us --json --run-dir --help" ;;
	esac

	if [[ $cur != -* && ($cmd == status || $cmd == workers || $cmd == assign || $cmd == poll) ]]; then
		# The disk name is the first positional argument, unless the
		# disk is QEMU's (--qmp SOCKET --id DEVICE).
		local have_name="" j
		for ((j = i + 1; j < cword; j++)); do
			case ${words[j]} in
			--qmp | --id)
				have_name=1
				((j++))
				;;
			--run-dir | --count | --cpus | --vq | --worker | --policy | --us) ((j++)) ;;
			-*) ;;
			*) have_name=1 ;;
			esac
		done
		if [[ -z $have_name ]]; then
			COMPREPLY=($(compgen -W "$(_vhost_blkctl_disks)" -- "$cur"))
			return
		fi
	fi
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _vhost_blkctl vhost-blkctl
