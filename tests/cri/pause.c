/* The pod sandbox's process, as Kubernetes' pause image has it: it only holds the pod's
 * namespaces open, reaps the zombies it inherits when it is the pod's PID 1, and exits on
 * SIGINT or SIGTERM. The node-path test and bench build it static (`cc -static`) and import
 * it as the sandbox image, so no registry is needed. */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct sigaction q = { .sa_handler = quit };
	struct sigaction r = { .sa_handler = reap, .sa_flags = SA_NOCLDSTOP };

	if (sigaction(SIGINT, &q, NULL) || sigaction(SIGTERM, &q, NULL) ||
	    sigaction(SIGCHLD, &r, NULL))
		return 1;
	for (;;)
		pause();
}
