#include "worker/util/process.hpp"

#include "worker/util/error.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace lethe::util {
namespace {

constexpr size_t k_err_cap = 64U << 10;

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

// The inherited environment without PG* variables, plus `spec`'s, as "NAME=value" strings.
// Secrets go into one Secret so their bytes are wiped when the parent is done.
std::vector<std::string> child_env(const ChildSpec& spec) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    std::string name(v.substr(0, v.find('=')));
    bool replaced = false;
    for (const auto& [n, value] : spec.env) {
      replaced = replaced || n == name;
    }
    for (const auto& [n, value] : spec.secret_env) {
      replaced = replaced || n == name;
    }
    if (!name.starts_with("PG") && !replaced) {
      out.emplace_back(v);
    }
  }
  for (const auto& [n, value] : spec.env) {
    out.push_back(n + "=" + value);
  }
  return out;
}

[[noreturn]] void exec_child(const ChildSpec& spec, char** argv, char** envp, int in, int out,
                             int err) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  int devnull = ::open("/dev/null", O_RDWR);
  ::dup2(in >= 0 ? in : devnull, 0);
  ::dup2(out >= 0 ? out : devnull, 1);
  ::dup2(err, 2);
  ::signal(SIGPIPE, SIG_DFL);
  ::execvpe(spec.program.c_str(), argv, envp);
  ::_exit(127);
}

} // namespace

Child::Child(const ChildSpec& spec) : m_what(spec.what.empty() ? spec.program : spec.what) {
  std::vector<std::string> env = child_env(spec);
  std::vector<Secret> secrets;
  for (const auto& [n, value] : spec.secret_env) {
    Secret s = Secret::with_capacity(n.size() + 1 + value->size());
    std::memcpy(s.data(), n.data(), n.size());
    s.data()[n.size()] = '=';
    std::memcpy(s.data() + n.size() + 1, value->view().data(), value->size());
    s.resize(n.size() + 1 + value->size());
    secrets.push_back(std::move(s));
  }
  std::vector<char*> envp;
  for (std::string& e : env) {
    envp.push_back(e.data());
  }
  for (Secret& s : secrets) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> args{spec.program};
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (std::string& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  int in[2] = {-1, -1};
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  bool ok = ::pipe2(err, O_CLOEXEC) == 0 && (!spec.feed_stdin || ::pipe2(in, O_CLOEXEC) == 0) &&
            (!spec.read_stdout || ::pipe2(out, O_CLOEXEC) == 0);
  pid_t pid = ok ? ::fork() : -1;
  if (pid == 0) {
    exec_child(spec, argv.data(), envp.data(), in[0], out[1], err[1]);
  }
  int saved = errno;
  for (int fd : {in[0], out[1], err[1]}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  if (pid < 0) {
    for (int fd : {in[1], out[0], err[0]}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
    throw Error(Exit::unavailable, "cannot start " + m_what + ": " + std::strerror(saved),
                "check that the machine can create processes and pipes");
  }
  for (int fd : {in[1], out[0]}) {
    if (fd >= 0) {
      ::fcntl(fd, F_SETPIPE_SZ, 1 << 20); // fewer wake-ups for a stream of hundreds of MiB
    }
  }
  if (spec.feed_stdin) {
    ::signal(SIGPIPE, SIG_IGN); // a child that exits early is EPIPE from write(), not a kill
  }
  m_pid = pid;
  m_in = in[1];
  m_out = out[0];
  m_errfd = err[0];
  ::fcntl(m_errfd, F_SETFL, O_NONBLOCK);
  if (m_in >= 0) {
    ::fcntl(m_in, F_SETFL, O_NONBLOCK); // a write never blocks while the child fills stderr
  }
}

Child::~Child() {
  if (m_pid > 0 && !m_status) {
    kill();
  }
  close_fd(m_in);
  close_fd(m_out);
  close_fd(m_errfd);
}

void Child::check_deadline() const {
  if (m_deadline && std::chrono::steady_clock::now() > *m_deadline) {
    throw ChildTimedOut{};
  }
}

void Child::drain_err() {
  char buf[4096];
  while (m_errfd >= 0) {
    ssize_t n = ::read(m_errfd, buf, sizeof buf);
    if (n > 0) {
      if (m_err.size() < k_err_cap) {
        m_err.append(buf, std::min(static_cast<size_t>(n), k_err_cap - m_err.size()));
      }
      continue;
    }
    if (n == 0) {
      close_fd(m_errfd);
    }
    return; // EAGAIN: nothing more now
  }
}

size_t Child::read(unsigned char* buf, size_t cap) {
  while (m_out >= 0) {
    check_deadline();
    pollfd fds[2] = {{m_out, POLLIN, 0}, {m_errfd, POLLIN, 0}};
    int r = ::poll(fds, m_errfd >= 0 ? 2 : 1, 1000);
    if (r < 0 && errno != EINTR) {
      throw Error(Exit::io, std::string("cannot wait for ") + m_what + ": " + std::strerror(errno));
    }
    if (m_errfd >= 0 && (fds[1].revents & (POLLIN | POLLHUP)) != 0) {
      drain_err();
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      ssize_t n = ::read(m_out, buf, cap);
      if (n > 0) {
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        close_fd(m_out);
        return 0;
      }
      if (errno != EINTR && errno != EAGAIN) {
        throw Error(Exit::io,
                    std::string("cannot read from ") + m_what + ": " + std::strerror(errno));
      }
    }
  }
  return 0;
}

bool Child::write(const unsigned char* data, size_t n) {
  size_t done = 0;
  while (done < n) {
    if (m_in < 0) {
      return false;
    }
    check_deadline();
    pollfd fds[2] = {{m_in, POLLOUT, 0}, {m_errfd, POLLIN, 0}};
    int r = ::poll(fds, m_errfd >= 0 ? 2 : 1, 1000);
    if (r < 0 && errno != EINTR) {
      throw Error(Exit::io, std::string("cannot wait for ") + m_what + ": " + std::strerror(errno));
    }
    if (m_errfd >= 0 && (fds[1].revents & (POLLIN | POLLHUP)) != 0) {
      drain_err();
    }
    if ((fds[0].revents & (POLLERR | POLLHUP)) != 0) {
      close_fd(m_in);
      return false;
    }
    if ((fds[0].revents & POLLOUT) != 0) {
      ssize_t w = ::write(m_in, data + done, n - done);
      if (w > 0) {
        done += static_cast<size_t>(w);
      } else if (w < 0 && errno == EPIPE) {
        close_fd(m_in);
        return false;
      } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
        throw Error(Exit::io,
                    std::string("cannot write to ") + m_what + ": " + std::strerror(errno));
      }
    }
  }
  return true;
}

void Child::close_stdin() {
  close_fd(m_in);
}

int Child::wait() {
  if (m_status) {
    return *m_status;
  }
  close_fd(m_in);
  for (;;) {
    drain_err();
    int status = 0;
    pid_t r = ::waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
      m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (r < 0 && errno != EINTR) {
      throw Error(Exit::internal, "cannot wait for " + m_what + ": " + std::strerror(errno));
    }
    check_deadline(); // the caller kills it (the destructor does)
    pollfd fd{m_errfd, POLLIN, 0};
    ::poll(&fd, m_errfd >= 0 ? 1 : 0, 50);
  }
  drain_err(); // what it said last; a grandchild holding stderr open is not waited for
  close_fd(m_errfd);
  close_fd(m_out);
  return *m_status;
}

void Child::kill() {
  if (m_pid > 0 && !m_status) {
    ::kill(m_pid, SIGKILL);
    close_fd(m_errfd);
    int status = 0;
    while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
    }
    m_status = 128 + SIGKILL;
  }
}

std::string program_version(const std::string& program) {
  ChildSpec spec;
  spec.program = program;
  spec.args = {"--version"};
  spec.read_stdout = true;
  Child c(spec);
  std::string out;
  unsigned char buf[256];
  for (size_t n; (n = c.read(buf, sizeof buf)) > 0 && out.size() < 4096;) {
    out.append(reinterpret_cast<const char*>(buf), n);
  }
  if (c.wait() != 0) {
    return {};
  }
  return out.substr(0, out.find('\n'));
}

} // namespace lethe::util
