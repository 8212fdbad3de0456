// Structured logging: one line per event on stderr, `level=… event=… key=value`, with the
// journald priority prefix (<3>…<7>) when stderr is the journal. Values are lethe's own facts
// (counts, ids, table names); callers never pass a value read from a PII column.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace lethe::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

struct Field {
  Field(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  Field(std::string k, const char* v) : key(std::move(k)), value(v) {}
  Field(std::string k, std::string_view v) : key(std::move(k)), value(v) {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  Field(std::string k, T v) : key(std::move(k)), value(format_number(v)) {}

  std::string key;
  std::string value;

private:
  template <typename T>
  static std::string format_number(T v) {
    if constexpr (std::is_same_v<T, bool>) {
      return v ? "true" : "false";
    } else {
      return std::to_string(v);
    }
  }
};

// Writes one event line.
void event(Level level, std::string_view name, std::initializer_list<Field> fields = {});

// Formats one event line without its trailing newline (what `event` writes).
std::string format(Level level, std::string_view name, std::initializer_list<Field> fields);

// Writes a free-form line (the `HINT:` line of a fatal error) with the level's prefix.
void line(Level level, std::string_view text);

// Events above `level` are dropped (default info; `--verbose` gives debug).
void set_max_level(Level level);

// Replaces the output (default: stderr); tests capture lines with it. Pass nullptr to restore.
void set_sink(std::function<void(const std::string&)> sink);

// True when stderr is connected to the systemd journal ($JOURNAL_STREAM matches stderr).
bool stderr_is_journal();

} // namespace lethe::log
