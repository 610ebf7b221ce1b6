/* testlib.h - shared by the test programs in this folder. */
#ifndef VRANGE_TESTLIB_H
#define VRANGE_TESTLIB_H

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* Ask vrange-run to purge every volatile page now (SIGUSR1 to the pid it
 * exports; our parent otherwise).  The purge is done before this process's
 * next vrange call is served. */
static inline void request_purge(void)
{
    const char *sup = getenv("VRANGE_SUPERVISOR_PID");
    kill(sup ? atoi(sup) : getppid(), SIGUSR1);
}

#endif
