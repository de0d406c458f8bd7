// bridge_guard.h -- the catch-and-record wrapper of every bridge entry point
// (the shape of tch's torch_api.cpp). C++ only; never included from C.
#ifndef FOLDLINE_TORCH_BRIDGE_GUARD_H
#define FOLDLINE_TORCH_BRIDGE_GUARD_H

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "base/error.h"

namespace foldline
{
// libtorch's messages carry a C++ backtrace after the first line; keep the first.
inline fl_code torch_error(fl_error *err, const char *what)
{
    std::string msg(what ? what : "unknown exception");
    size_t nl = msg.find('\n');
    if (nl != std::string::npos)
        msg.resize(nl);
    return fl_fail(err, FL_ETORCH, "libtorch: %s", msg.c_str());
}
} // namespace foldline

// The body is variadic so that commas in it (template arguments, braced
// initialisers) need no extra parentheses. It may `return` an fl_code itself.
#define FL_TORCH_GUARD(err, ...)                                                                                       \
    try {                                                                                                              \
        __VA_ARGS__;                                                                                                   \
        return FL_OK;                                                                                                  \
    } catch (const std::bad_alloc &e) {                                                                                \
        return fl_fail(err, FL_ENOMEM, "out of memory (%s)", e.what());                                                \
    } catch (const std::exception &e) {                                                                                \
        return foldline::torch_error(err, e.what());                                                                   \
    } catch (...) {                                                                                                    \
        return foldline::torch_error(err, "unknown exception");                                                        \
    }

#endif
