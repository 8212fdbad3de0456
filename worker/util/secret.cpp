#include "worker/util/secret.hpp"

#include <cstring>
#include <string.h> // explicit_bzero (glibc)

namespace lethe::util {

void wipe_bytes(void* p, std::size_t n) noexcept {
  if (p != nullptr && n > 0) {
    ::explicit_bzero(p, n);
  }
}

Secret::Secret(std::string_view bytes) : Secret(with_capacity(bytes.size())) {
  if (!bytes.empty()) {
    std::memcpy(m_data.get(), bytes.data(), bytes.size());
  }
  m_size = bytes.size();
}

Secret Secret::with_capacity(std::size_t capacity) {
  Secret s;
  s.m_data = std::make_unique<char[]>(capacity + 1); // value-initialized: all zero
  s.m_capacity = capacity;
  return s;
}

Secret::~Secret() {
  wipe();
}

Secret::Secret(Secret&& other) noexcept
    : m_data(std::move(other.m_data)), m_size(other.m_size), m_capacity(other.m_capacity) {
  other.m_size = 0;
  other.m_capacity = 0;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    wipe();
    m_data = std::move(other.m_data);
    m_size = other.m_size;
    m_capacity = other.m_capacity;
    other.m_size = 0;
    other.m_capacity = 0;
  }
  return *this;
}

void Secret::resize(std::size_t size) noexcept {
  if (size > m_capacity) {
    size = m_capacity;
  }
  if (m_data) {
    wipe_bytes(m_data.get() + size, m_capacity - size); // keeps c_str() terminated at size
  }
  m_size = size;
}

void Secret::wipe() noexcept {
  wipe_bytes(m_data.get(), m_capacity + (m_data ? 1 : 0));
  m_size = 0;
}

} // namespace lethe::util
