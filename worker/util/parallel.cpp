#include "worker/util/parallel.hpp"

#include <exception>
#include <thread>

namespace lethe::util {

void in_parallel(const std::function<void()>& here, const std::function<void()>& there) {
  std::exception_ptr failed;
  std::thread second;
  if (there) {
    second = std::thread([&] {
      try {
        there();
      } catch (...) {
        failed = std::current_exception();
      }
    });
  }
  try {
    here();
  } catch (...) {
    if (second.joinable()) {
      second.join();
    }
    throw;
  }
  if (second.joinable()) {
    second.join();
  }
  if (failed) {
    std::rethrow_exception(failed);
  }
}

} // namespace lethe::util
