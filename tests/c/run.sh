#!/bin/sh
# Builds and runs tether's C tests and examples against libtether, with
# -Wall -Wextra -Werror and AddressSanitizer (LeakSanitizer on) + UBSan.
#
# Usage (from anywhere):  tests/c/run.sh
#
# Environment:
#   CC                  C compiler (default: cc)
#   TETHER_SKIP_CARGO=1 do not run `cargo build -p tether-ffi` first
#   TETHER_LIB_DIR      where libtether.a is (default: <root>/target/debug,
#                       or $CARGO_TARGET_DIR/debug)
#   TETHER_C_OUT        build directory (default: <target>/c-tests)
#   TETHER_LINK=shared  link libtether.so instead of libtether.a
#
# Exit status: 0 when every test and example passed, 1 otherwise.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

CC=${CC:-cc}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LIB_DIR=${TETHER_LIB_DIR:-$TARGET_DIR/debug}
OUT=${TETHER_C_OUT:-$TARGET_DIR/c-tests}
mkdir -p "$OUT"

if [ "${TETHER_SKIP_CARGO:-0}" != 1 ]; then
    cargo build --quiet -p tether-ffi
fi

# The checked-in header must be exactly what cbindgen generates.
if command -v cbindgen >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cbindgen" ]; then
    CBINDGEN=$(command -v cbindgen || echo "$HOME/.cargo/bin/cbindgen")
    if "$CBINDGEN" --version | grep -q ' 0\.29\.4$'; then
        "$CBINDGEN" --quiet --config ffi/cbindgen.toml --crate tether-ffi --output "$OUT/tether.h" ffi
        if ! diff -u include/tether.h "$OUT/tether.h"; then
            echo "FAIL: include/tether.h is stale; regenerate it with:" >&2
            echo "  cbindgen --quiet --config ffi/cbindgen.toml --crate tether-ffi --output include/tether.h ffi" >&2
            exit 1
        fi
        echo "ok: include/tether.h matches cbindgen 0.29.4 output"
    else
        echo "skip: header drift check needs cbindgen 0.29.4 (found $("$CBINDGEN" --version))"
    fi
else
    echo "skip: header drift check (cbindgen not installed)"
fi

# The header compiles as pedantic C99 and, thanks to its extern "C" guard,
# as C++11.
cat >"$OUT/header_check.c" <<'EOF'
#include "tether.h"
int main(void) {
    tether_backoff none = {0};
    return tether_backoff_free(none) == TETHER_RESULT_OK ? 0 : 1;
}
EOF
$CC -std=c99 -pedantic -Wall -Wextra -Werror -Iinclude -fsyntax-only "$OUT/header_check.c"
CXX=${CXX:-c++}
if command -v "$CXX" >/dev/null 2>&1; then
    cp "$OUT/header_check.c" "$OUT/header_check.cpp"
    "$CXX" -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -fsyntax-only "$OUT/header_check.cpp"
    echo "ok: include/tether.h compiles as C99 and C++11"
else
    echo "ok: include/tether.h compiles as C99 (no C++ compiler for the C++ check)"
fi

CFLAGS="-std=c11 -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
-fno-omit-frame-pointer -fno-sanitize-recover=undefined -Iinclude"
if [ "${TETHER_LINK:-static}" = shared ]; then
    LIBS="-L$LIB_DIR -Wl,-rpath,$LIB_DIR -ltether -lpthread -ldl -lm"
else
    LIBS="$LIB_DIR/libtether.a -lpthread -ldl -lm"
fi

build() { # build <output> <source>
    # shellcheck disable=SC2086
    $CC $CFLAGS -o "$OUT/$1" "$2" $LIBS
}

build test_handles tests/c/test_handles.c
build test_s4_epoll tests/c/test_s4_epoll.c
build test_managed tests/c/test_managed.c
build test_transports tests/c/test_transports.c
build test_config_limits tests/c/test_config_limits.c
build test_conn tests/c/test_conn.c
build epoll_echo_server examples/c/epoll_echo_server.c
build supervised_client examples/c/supervised_client.c
echo "ok: built C tests and examples in $OUT"

# Every ```c block of the READMEs compiles and links with the same flags
# (built, not run; tests/c/readme_snippets.awk says how a fragment is
# wrapped into a function).
rm -f "$OUT"/readme_*.c
snippets=$(
    awk -v out="$OUT" -v tag=root -f tests/c/readme_snippets.awk README.md
    awk -v out="$OUT" -v tag=python -f tests/c/readme_snippets.awk bindings/python/README.md
)
if [ -z "$snippets" ]; then
    echo "FAIL: no \`\`\`c block found in README.md" >&2
    exit 1
fi
count=0
for src in $snippets; do
    build "$(basename "$src" .c)" "$src"
    count=$((count + 1))
done
echo "ok: built the READMEs' $count C snippets"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

failed=0
run() { # run <name> [args...]
    name=$1
    shift
    if "$OUT/$name" "$@"; then
        echo "PASS: $name"
    else
        echo "FAIL: $name (exit $?)" >&2
        failed=1
    fi
}

run test_handles
run test_s4_epoll
run test_managed
run test_transports
run test_config_limits
run test_conn

# The two examples together: the managed client against the epoll server.
# The log is created before the server starts: reading a previous run's
# log (a stale port), or none yet, would race with the server's startup.
: >"$OUT/echo_server.log"
"$OUT/epoll_echo_server" 0 >>"$OUT/echo_server.log" &
server_pid=$!
port=""
i=0
while [ $i -lt 100 ]; do
    port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$OUT/echo_server.log")
    [ -n "$port" ] && break
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "FAIL: epoll_echo_server did not start" >&2
    kill "$server_pid" 2>/dev/null || true
    failed=1
else
    run supervised_client "tcp://127.0.0.1:$port" 5
    kill -TERM "$server_pid"
    if wait "$server_pid"; then
        echo "PASS: epoll_echo_server ($(tail -n 1 "$OUT/echo_server.log"))"
    else
        echo "FAIL: epoll_echo_server exited with an error" >&2
        cat "$OUT/echo_server.log" >&2
        failed=1
    fi
fi

if [ $failed -ne 0 ]; then
    echo "C tests FAILED" >&2
    exit 1
fi
echo "all C tests passed"
