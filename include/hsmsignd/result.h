// A value or a typed error. Inside the project, functions that can fail at run time return this instead
// of throwing; exceptions are kept for start-up and configuration (see docs/design.md).
#pragma once

#include <cassert>
#include <optional>
#include <stdexcept>
#include <utility>
#include <variant>

namespace hsmsignd {

template <class T, class E>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Expected(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& operator*() & { assert(has_value()); return std::get<0>(v_); }
  const T& operator*() const& { assert(has_value()); return std::get<0>(v_); }
  T&& operator*() && { assert(has_value()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &**this; }
  const T* operator->() const { return &**this; }

  // For tests and start-up code, where a failure is fatal anyway.
  T& value() & { throw_if_error(); return std::get<0>(v_); }
  T&& value() && { throw_if_error(); return std::get<0>(std::move(v_)); }

  const E& error() const { assert(!has_value()); return std::get<1>(v_); }

 private:
  void throw_if_error() const {
    if (!has_value()) throw std::runtime_error(error().what());
  }
  std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  Expected(E error) : e_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const noexcept { return !e_; }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {
    if (e_) throw std::runtime_error(e_->what());
  }
  const E& error() const { assert(e_); return *e_; }

 private:
  std::optional<E> e_;
};

}  // namespace hsmsignd
