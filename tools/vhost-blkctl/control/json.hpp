// SPDX-License-Identifier: GPL-2.0
// The control protocol: one JSON object per line each way over a unix
// socket.
//
//   {"cmd":"status"}                          -> {"ok":true,"status":{...}}
//   {"cmd":"workers","count":N}               -> {"ok":true,"status":{...}}
//   {"cmd":"assign","vq":Q,"worker":W}        -> {"ok":true,"status":{...}}
//   {"cmd":"assign","policy":"per-vq"}        -> {"ok":true,"status":{...}}
//   failure                                   -> {"ok":false,"code":"invalid-argument",
//                                                 "error":"worker 5 out of range (0-1)"}
//
// The status object has the keys of DiskStatus (see to_json); they are
// stable, tools may parse them.
#pragma once

#include "control/status.hpp"

#include <nlohmann/json.hpp>

namespace control {

inline constexpr int protocol_version = 1;

void to_json(nlohmann::json &j, const VqStatus &v);
void from_json(const nlohmann::json &j, VqStatus &v);
void to_json(nlohmann::json &j, const WorkerStatus &w);
void from_json(const nlohmann::json &j, WorkerStatus &w);
void to_json(nlohmann::json &j, const DiskStatus &d);
void from_json(const nlohmann::json &j, DiskStatus &d);

// Applies one parsed request to `svc` (the CLI does this for a disk QEMU
// owns, which it reaches through QMP instead of a control socket).  Throws
// RequestError for a malformed request, and whatever `svc` throws.
void apply_request(Service &svc, const nlohmann::json &req);

// Parses one request line and applies it to `svc`; never throws, every
// failure is an {"ok":false,...} reply.
nlohmann::json handle_request(Service &svc, const std::string &line);

} // namespace control
