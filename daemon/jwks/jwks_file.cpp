#include "jwks/jwks_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace hsmsignd::jwks {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::error_code last_error() { return {errno, std::generic_category()}; }

}  // namespace

std::error_code write_atomically(const std::filesystem::path& path, std::string_view content) {
  const auto folder = path.parent_path();
  const auto temporary = folder / ("." + path.filename().string() + ".tmp");
  {
    Fd file{::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)};
    if (file.fd < 0) return last_error();
    ::fchmod(file.fd, 0644);  // public keys: anyone may read them, whatever the umask
    for (std::size_t done = 0; done < content.size();) {
      const ssize_t n = ::write(file.fd, content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return last_error();
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(file.fd) != 0) return last_error();
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) return last_error();
  Fd dir{::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd >= 0) ::fsync(dir.fd);  // the rename itself must survive a crash
  return {};
}

}  // namespace hsmsignd::jwks
