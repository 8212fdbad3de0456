// Bytes that must not outlive their use (passwords, keys): wiped when released, never copied.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace lethe::util {

// A secret held in memory once: moving hands over the buffer, copying is impossible, and the
// bytes are overwritten with zeros on destruction and on `wipe()`. Always NUL-terminated, so
// `c_str()` can go to a C API (libpq) without a copy.
class Secret {
public:
  Secret() = default;
  // Copies `bytes` into a new buffer; the caller wipes its own copy.
  explicit Secret(std::string_view bytes);
  // An empty secret with room for `capacity` bytes, filled through `data()` and `resize()`.
  static Secret with_capacity(std::size_t capacity);
  ~Secret();
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;

  std::string_view view() const noexcept { return {c_str(), m_size}; }
  const char* c_str() const noexcept { return m_data ? m_data.get() : ""; }
  char* data() noexcept { return m_data.get(); }
  std::size_t size() const noexcept { return m_size; }
  std::size_t capacity() const noexcept { return m_capacity; }
  bool empty() const noexcept { return m_size == 0; }

  // Sets the length to `size` (at most capacity()) after filling data(); the bytes past it are
  // zeroed.
  void resize(std::size_t size) noexcept;
  // Overwrites every byte of the buffer with zeros and leaves the secret empty (the buffer
  // stays allocated until destruction).
  void wipe() noexcept;

private:
  std::unique_ptr<char[]> m_data; // m_capacity + 1 bytes, the last always NUL
  std::size_t m_size = 0;
  std::size_t m_capacity = 0;
};

// Overwrites `n` bytes at `p` with zeros in a way the compiler may not optimize away.
void wipe_bytes(void* p, std::size_t n) noexcept;

} // namespace lethe::util
