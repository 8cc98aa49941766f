// The user PIN: read from a file only its owner can read, held in memory that is locked (never swapped)
// and wiped when the PIN is dropped.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <span>

#include "error.h"

namespace hsmsignd::pkcs11 {

class Pin {
 public:
  static constexpr std::size_t kMaxLength = 255;

  // One trailing newline is dropped. Refuses a file readable or writable by group or others, a
  // symlink, an empty PIN and one longer than kMaxLength.
  static Result<Pin> read_file(const std::filesystem::path& path);
  // For tests and tools that get the PIN some other way.
  static Result<Pin> from_string(std::string_view pin);

  Pin(Pin&&) noexcept = default;
  Pin& operator=(Pin&&) noexcept = default;
  ~Pin();

  std::span<const unsigned char> bytes() const { return {storage_->data.data(), storage_->length}; }

 private:
  struct Storage {
    std::array<unsigned char, kMaxLength + 1> data{};
    std::size_t length = 0;
  };
  Pin();
  std::unique_ptr<Storage> storage_;
};

}  // namespace hsmsignd::pkcs11
