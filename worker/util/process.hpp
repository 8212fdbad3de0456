// Child programs (pg_dump, pg_restore) run with pipes, never through a shell: the arguments go
// to execvp as they are, secrets only through the child's own environment, and what the child
// says on stderr is kept in memory for lethe to classify, never printed (a server's error text
// can quote a row).
#pragma once

#include "worker/util/secret.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lethe::util {

struct ChildSpec {
  std::string program;           // a name on PATH or a path
  std::vector<std::string> args; // after the program name
  // Added to (or replacing in) the inherited environment, whose PG* variables are dropped so
  // only what lethe sets reaches the child.
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::pair<std::string, const Secret*>> secret_env; // e.g. PGPASSWORD
  bool feed_stdin = false;  // the parent writes the child's standard input
  bool read_stdout = false; // the parent reads the child's standard output
  std::string what;         // "pg_dump", for messages
};

// Thrown by read/write when the deadline passed.
struct ChildTimedOut {};

class Child {
public:
  // Starts the child; throws Error(unavailable) when the program cannot be run. The child gets
  // SIGKILL if lethe dies first.
  explicit Child(const ChildSpec& spec);
  ~Child(); // kills and reaps a child still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Up to `cap` bytes of the child's stdout; 0 at its end.
  size_t read(unsigned char* buf, size_t cap);
  // All `n` bytes to the child's stdin; false when the child closed it (it exited).
  bool write(const unsigned char* data, size_t n);
  // Ends the child's stdin.
  void close_stdin();
  // Waits for the child (draining its stderr); its exit code, or 128 + the signal.
  int wait();
  // SIGKILL, then wait.
  void kill();

  // Reads and writes after this instant throw ChildTimedOut.
  void set_deadline(std::chrono::steady_clock::time_point t) { m_deadline = t; }

  // The child's stderr as it said it (bounded); for classification only: never print it.
  const std::string& stderr_text() const { return m_err; }
  const std::string& what() const { return m_what; }

private:
  void drain_err();
  void check_deadline() const;

  std::string m_what;
  int m_pid = -1;
  int m_in = -1;
  int m_out = -1;
  int m_errfd = -1;
  std::string m_err;
  std::optional<int> m_status;
  std::optional<std::chrono::steady_clock::time_point> m_deadline;
};

// The program's first line of `--version` output (e.g. "pg_dump (PostgreSQL) 15.8"), or empty.
std::string program_version(const std::string& program);

} // namespace lethe::util
