// AMQPGW_DCHECK(condition): a debug assertion for rules the compiler cannot
// check, above all "worker thread only" (AMQPGW_DCHECK(InWorkerThread())).
//
// On (AMQPGW_DCHECK_IS_ON is 1) in Debug builds, in sanitizer builds and in
// the libraries unit tests link (CMake defines AMQPGW_DCHECK_ON for those);
// off in RelWithDebInfo and Release builds of the daemon, where the
// condition is not evaluated at all. A failed check prints the condition
// and its place to stderr and aborts: a broken thread rule is a bug to find
// where it happens, not an error to answer.
#ifndef AMQPGW_SERVER_BASE_CHECK_H_
#define AMQPGW_SERVER_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#if defined(AMQPGW_DCHECK_ON) || !defined(NDEBUG)
#define AMQPGW_DCHECK_IS_ON 1
#else
#define AMQPGW_DCHECK_IS_ON 0
#endif

namespace amqpgw::base_internal {

[[noreturn]] inline void CheckFailed(const char* condition, const char* file,
                                     int line) {
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace amqpgw::base_internal

#if AMQPGW_DCHECK_IS_ON
#define AMQPGW_DCHECK(condition)                                            \
  do {                                                                      \
    if (!(condition)) {                                                     \
      ::amqpgw::base_internal::CheckFailed(#condition, __FILE__, __LINE__); \
    }                                                                       \
  } while (false)
#else
// Not evaluated, but still compiled: a check cannot rot in release builds.
#define AMQPGW_DCHECK(condition) \
  do {                           \
    if (false && (condition)) {  \
    }                            \
  } while (false)
#endif

#endif  // AMQPGW_SERVER_BASE_CHECK_H_
