#include "worker/log/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <sys/stat.h>
#include <unistd.h>

namespace lethe::log {
namespace {

Level g_max_level = Level::info;
std::function<void(const std::string&)> g_sink;

const char* level_name(Level level) {
  switch (level) {
  case Level::error:
    return "error";
  case Level::warning:
    return "warning";
  case Level::notice:
    return "notice";
  case Level::info:
    return "info";
  case Level::debug:
    return "debug";
  }
  return "info";
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

void append_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '"';
}

std::string prefix(Level level) {
  if (!stderr_is_journal()) {
    return {};
  }
  return "<" + std::to_string(static_cast<int>(level)) + ">";
}

void emit(const std::string& text) {
  if (g_sink) {
    g_sink(text);
    return;
  }
  std::string withnl = text + "\n";
  std::fwrite(withnl.data(), 1, withnl.size(), stderr);
  std::fflush(stderr);
}

} // namespace

std::string format(Level level, std::string_view name, std::initializer_list<Field> fields) {
  std::string out = prefix(level);
  out += "level=";
  out += level_name(level);
  out += " event=";
  append_value(out, name);
  for (const Field& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    append_value(out, f.value);
  }
  return out;
}

void event(Level level, std::string_view name, std::initializer_list<Field> fields) {
  if (static_cast<int>(level) > static_cast<int>(g_max_level)) {
    return;
  }
  emit(format(level, name, fields));
}

void line(Level level, std::string_view text) {
  emit(prefix(level) + std::string(text));
}

void set_max_level(Level level) {
  g_max_level = level;
}

void set_sink(std::function<void(const std::string&)> sink) {
  g_sink = std::move(sink);
}

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) {
    return false;
  }
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) {
    return false;
  }
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) {
    return false;
  }
  return st.st_dev == dev && st.st_ino == ino;
}

} // namespace lethe::log
