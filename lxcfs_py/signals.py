"""What each signal does to the daemon: no signal an operator or a service manager sends takes the mount down.

The groups follow LXCFS, so lxcfs-py drops in for it (Debian's lxcfs.service
reloads with `kill -USR1`); every other signal whose default would end or
stop the process is caught and ignored: a dead or stopped daemon leaves
every container's /proc hanging or failing.
"""

import signal

STOP = (signal.SIGTERM, signal.SIGINT)  # unmount cleanly and exit
RELOAD = (signal.SIGHUP, signal.SIGUSR1)  # hand the mount to a fresh process running the installed code
TOGGLE = (signal.SIGUSR2,)  # LXCFS's switch between virtualized and host values
IGNORED = (signal.SIGQUIT, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR,
           signal.SIGXCPU, signal.SIGXFSZ, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH,
           signal.SIGURG)
TIMER = (signal.SIGALRM,)  # the daemon's own timer (deadline.py); one sent from outside does no harm
# SIGPIPE stays ignored as Python sets it; SIGCHLD keeps its default, which child processes need
RECEIVED = STOP + RELOAD + TOGGLE + IGNORED  # by the serving loop (serve.py)
HANDLED = RECEIVED + TIMER


def name(signum: int) -> str:
    return signal.Signals(signum).name
