// The fault shim's control file: what to inject, parsed from text, and re-read when the file changes.
// One directive per line; `#` starts a comment; FUNCTION is a Cryptoki name or `*` (every function but
// C_Initialize, C_Finalize and C_GetInfo); COUNT limits a directive to its next COUNT matching calls,
// counted from when this version of the file was read.
//   fail FUNCTION RV [COUNT]   return RV (CKR_ name or 0x hex) instead of calling the module
//   removed                    the token is pulled out, until re-initialised without this line
//   latency MS [FUNCTION]      sleep before calling the module (default `*`)
//   corrupt FUNCTION [COUNT]   flip a bit in the middle of each signature C_Sign/C_SignFinal returns
//   hang FUNCTION              block until the line is gone
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "functions.h"

namespace hsmsignd::fault {

enum class Action { fail, latency, corrupt, hang };

struct Rule {
  Action action = Action::fail;
  std::optional<Fn> function;              // none: `*`, every function but the lifecycle ones
  CK_RV rv = CKR_OK;                       // fail
  std::chrono::milliseconds delay{0};      // latency
  std::optional<unsigned long> remaining;  // fail and corrupt with a COUNT: injections still to make

  bool matches(Fn fn) const { return function ? *function == fn : info(fn).kind != Kind::lifecycle; }
};

struct Control {
  std::vector<Rule> rules;
  bool removed = false;
};

// Parses the whole file. A line it cannot use is left out and described in `complaints`
// ("line 3: unknown directive \"fial\""), so a typo never silently becomes a different fault.
Control parse_control(std::string_view text, std::vector<std::string>& complaints);

// "CKR_DEVICE_ERROR" or "0x30" → the code.
std::optional<CK_RV> parse_rv(std::string_view text);

// Watches one path. Tests replace the file by rename, so a new inode alone marks a new version even
// when size and mtime (coarse clock ticks) happen to match the old one.
class ControlFile {
 public:
  explicit ControlFile(std::string path) : path_(std::move(path)) {}

  // Re-reads the file if it changed since the last look; a missing file (or none named) is an empty
  // control. True when `into` was replaced; `complaints` then describes the new version's bad lines.
  bool refresh(Control& into, std::vector<std::string>& complaints);

 private:
  struct Version {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{}, ctime{};
    bool operator==(const Version& o) const;
  };
  std::string path_;
  std::optional<Version> seen_;
};

}  // namespace hsmsignd::fault
