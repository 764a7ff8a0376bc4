// SPDX-License-Identifier: GPL-2.0
// The control protocol: one JSON object per line each way over a unix
// socket.
//
//   {"cmd":"status"}                          -> {"ok":true,"status":{...}}
//   {"cmd":"workers","count":N}               -> {"ok":true,"status":{...}}
//   {"cmd":"assign","vq":Q,"worker":W}        -> {"ok":true,"status":{...}}
//   {"cmd":"assign","policy":"per-vq"}        -> {"ok":true,"status":{...}}
//   {"cmd":"poll","us":N}                     -> {"ok":true,"status":{...}}
//   failure                                   -> {"ok":false,"code":"invalid-argument",
//                                                 "error":"worker 5 out of range (0-1)"}
//
// The status object is the disk object of vhost-blkctl's JSON contract
// (vhost-blkctl(8), JSON OUTPUT): the keys of DiskStatus (see to_json),
// null for what is unknown.  Readers take what they know and keep the
// rest, so a CLI and a daemon of different versions understand each other.
#pragma once

#include "control/status.hpp"

#include <nlohmann/json.hpp>

namespace control {

inline constexpr int protocol_version = 1;
// The "version" at the top of every JSON document the CLI prints.
inline constexpr int json_version = 1;

// {"bits": "0x...", "names": [...]}: a feature word, the same everywhere.
nlohmann::json features_json(uint64_t features);
// "connected" or "waiting".
std::string disk_state(const DiskStatus &d);

// A disk object as any daemon version sends it, in this version's shape:
// keys this tool does not know are kept as they are, known keys it lacks
// are null, a features number becomes {bits, names}, and a negative id
// (what older daemons sent for "none") becomes null.  Throws
// std::invalid_argument unless `raw` is an object with a string "name".
nlohmann::json normalize_disk(const nlohmann::json &raw);

// `body` (an object) with "version": json_version added.
nlohmann::json document(nlohmann::json body);

void to_json(nlohmann::json &j, const VqStatus &v);
void from_json(const nlohmann::json &j, VqStatus &v);
void to_json(nlohmann::json &j, const WorkerStatus &w);
void from_json(const nlohmann::json &j, WorkerStatus &w);
void to_json(nlohmann::json &j, const DiskStatus &d);
// Tolerant: only a disk's "name" is required; a missing or null key
// leaves the default (a newer tool reading an older daemon), unknown keys
// are ignored (an older tool reading a newer one).  Throws
// nlohmann::json::exception for a known key of the wrong type.
void from_json(const nlohmann::json &j, DiskStatus &d);

// Applies one parsed request to `svc` (the CLI does this for a disk QEMU
// owns, which it reaches through QMP instead of a control socket).  Throws
// RequestError for a malformed request, and whatever `svc` throws.
void apply_request(Service &svc, const nlohmann::json &req);

// Parses one request line and applies it to `svc`; never throws, every
// failure is an {"ok":false,...} reply.
nlohmann::json handle_request(Service &svc, const std::string &line);

} // namespace control
