#include "pin.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>

namespace hsmsignd::pkcs11 {
namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Pin::Pin() : storage_(std::make_unique<Storage>()) {
  // Best effort: without CAP_IPC_LOCK a small RLIMIT_MEMLOCK still covers one page.
  ::mlock(storage_.get(), sizeof(Storage));
}

Pin::~Pin() {
  if (!storage_) return;  // moved from
  OPENSSL_cleanse(storage_.get(), sizeof(Storage));
  ::munlock(storage_.get(), sizeof(Storage));
}

Result<Pin> Pin::from_string(std::string_view text) {
  if (text.empty() || text.size() > kMaxLength) return Error::config("PIN must be 1 to 255 bytes");
  Pin pin;
  std::memcpy(pin.storage_->data.data(), text.data(), text.size());
  pin.storage_->length = text.size();
  return pin;
}

Result<Pin> Pin::read_file(const std::filesystem::path& path) {
  const std::string name = "PIN file " + path.string();
  Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
  if (file.fd < 0) return Error::config(name + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) return Error::config(name + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Error::config(name + " is not a regular file");
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    return Error::config(name + " must not be accessible by group or others (chmod 0600)");

  Pin pin;
  auto& buf = pin.storage_->data;
  std::size_t length = 0;
  for (;;) {
    const ssize_t n = ::read(file.fd, buf.data() + length, buf.size() - length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::config(name + ": " + std::strerror(errno));
    if (n == 0) break;
    length += static_cast<std::size_t>(n);
    if (length == buf.size()) return Error::config(name + ": PIN longer than 255 bytes");
  }
  if (length > 0 && buf[length - 1] == '\n') --length;
  if (length > 0 && buf[length - 1] == '\r') --length;
  if (length == 0) return Error::config(name + " is empty");
  pin.storage_->length = length;
  return pin;
}

}  // namespace hsmsignd::pkcs11
