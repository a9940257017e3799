/* Entrypoint of every fixture image: a static binary, so images need no libc.
 * No arguments: wait for SIGTERM or SIGINT and exit 0. As PID 1 of a container, signals
 * without a handler are ignored, hence the explicit handlers.
 * "exit": exit 0 at once, for containers that must reach EXITED. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void done(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exit") == 0)
        return 0;
    signal(SIGTERM, done);
    signal(SIGINT, done);
    for (;;)
        pause();
}
