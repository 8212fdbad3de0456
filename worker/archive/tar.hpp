// The archive container: a POSIX pax tar stream compressed with zstd (libarchive only here).
// Members are written whole from memory, so a member's size is known for its header; callers
// bound member sizes to keep memory flat.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace lethe::archive {

// Receives the compressed container bytes.
using ByteSink = std::function<void(const unsigned char*, size_t)>;

class TarWriter {
public:
  explicit TarWriter(ByteSink out);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  // Adds member `name` (mode 0600) holding `data`.
  void add(const std::string& name, std::string_view data);
  // Ends the archive and flushes the compressor.
  void finish();

  struct Impl;

private:
  std::unique_ptr<Impl> m_impl;
};

// Supplies container bytes on demand: fills `buf` and returns how many (0 at the end).
using ByteSource = std::function<size_t(unsigned char* buf, size_t cap)>;

class TarReader {
public:
  explicit TarReader(ByteSource in);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Moves to the next member; false at the end of the archive. Throws Error(data) if damaged.
  bool next(std::string& name);
  // Reads the current member in pieces; `chunk` gets each piece.
  void read(const std::function<void(std::string_view chunk)>& chunk);

  struct Impl;

private:
  std::unique_ptr<Impl> m_impl;
};

} // namespace lethe::archive
