/*
 * readbench: how many times per second can a file be opened, read to EOF
 * and closed? (With -p, pause that long after each iteration: a paced reader,
 * to see what a daemon spends per request when requests do not come back to
 * back; the rate then mostly measures the pause.)
 *
 *   readbench [-d SECONDS] [-w SECONDS] [-b BYTES] [-p MICROSECONDS] [-t EPOCH] PATH...
 *   readbench -s DIR
 *
 * For each PATH: loop open/read-until-EOF/close for a warm-up period (not
 * counted), then for the measured period, and print one line:
 *
 *   PATH OPS ELAPSED_S OPS_PER_S MIN_BYTES MAX_BYTES WARMUP_OPS LATE_S
 *
 * With -t, wait until that wall-clock time (seconds since the epoch) before
 * the warm-up, and measure from EPOCH + warm-up on: readers in several
 * containers then measure the same window, however late each was started.
 * LATE_S is how late the warm-up began (a reader woken after its window
 * opened measures less of it).
 *
 * -s DIR serves many runs: it reads lines "EPOCH DURATION WARMUP BYTES
 * PAUSE_US PATH" from the FIFO DIR/commands and answers each on the FIFO
 * DIR/results with the line above (or "error MESSAGE"); it exits at the end
 * of the commands (when the other side closes them).
 *
 * Only complete, successful iterations are counted; any failing syscall
 * (including a short close) aborts the run with exit status 1, so a broken
 * mount can never look fast. Built static so it runs in any container image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *results; /* -s: failures are reported there too */

static void fail(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	fputs("readbench: ", stderr);
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
	va_end(args);
	if (results != NULL) {
		va_start(args, format);
		fputs("error ", results);
		vfprintf(results, format, args);
		fputc('\n', results);
		fflush(results);
		va_end(args);
	}
	exit(1);
}

static double clock_seconds(clockid_t clock)
{
	struct timespec ts;
	if (clock_gettime(clock, &ts) != 0)
		fail("clock_gettime: %s", strerror(errno));
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_seconds(CLOCK_MONOTONIC);
}

/* One open/read-to-EOF/close; returns the bytes read, exits on any error. */
static size_t once(const char *path, char *buf, size_t size)
{
	size_t total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, buf, size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("read %s: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		total += (size_t)n;
	}
	if (close(fd) != 0)
		fail("close %s: %s", path, strerror(errno));
	return total;
}

static void sleep_for(double seconds)
{
	if (seconds <= 0)
		return;
	struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double parse_seconds(const char *text, const char *what)
{
	char *end;
	double value = strtod(text, &end);
	if (*text == '\0' || *end != '\0' || value < 0) {
		fprintf(stderr, "readbench: bad %s: %s\n", what, text);
		exit(2);
	}
	return value;
}

struct run {
	double start_epoch; /* 0: start now */
	double duration, warmup, pause;
	size_t size;
};

/* Warm up, measure, and print the result line to `out`. */
static void measure(const char *path, const struct run *run, char *buf, FILE *out)
{
	double late = 0;
	if (run->start_epoch > 0) {
		/* the monotonic clock measures; the wall clock only says when to begin */
		double wait = run->start_epoch - clock_seconds(CLOCK_REALTIME);
		sleep_for(wait);
		late = wait < 0 ? -wait : clock_seconds(CLOCK_REALTIME) - run->start_epoch;
	}
	double begin = now();
	double start = begin + run->warmup - late; /* the window is fixed by the epoch, not by our waking */
	unsigned long long warmup_ops = 0;
	while (now() < start) {
		once(path, buf, run->size);
		warmup_ops++;
		sleep_for(run->pause);
	}

	unsigned long long ops = 0;
	size_t min_bytes = (size_t)-1, max_bytes = 0;
	double end = start + run->duration, t;
	start = now();
	do {
		size_t got = once(path, buf, run->size);
		ops++;
		if (got < min_bytes)
			min_bytes = got;
		if (got > max_bytes)
			max_bytes = got;
		sleep_for(run->pause);
		t = now();
	} while (t < end);
	double elapsed = t - start;
	fprintf(out, "%s %llu %.6f %.1f %zu %zu %llu %.6f\n", path, ops, elapsed, ops / elapsed, min_bytes, max_bytes,
		warmup_ops, late);
	fflush(out);
}

static char *alloc_buffer(size_t size)
{
	char *buf = malloc(size);
	if (buf == NULL)
		fail("malloc %zu: %s", size, strerror(errno));
	return buf;
}

static int serve(const char *dir)
{
	char name[4096];
	snprintf(name, sizeof(name), "%s/commands", dir);
	FILE *commands = fopen(name, "r");
	if (commands == NULL)
		fail("%s: %s", name, strerror(errno));
	snprintf(name, sizeof(name), "%s/results", dir);
	results = fopen(name, "w");
	if (results == NULL)
		fail("%s: %s", name, strerror(errno));

	char line[8192], path[4096];
	while (fgets(line, sizeof(line), commands) != NULL) {
		struct run run;
		double pause_us;
		if (sscanf(line, "%lf %lf %lf %zu %lf %4095[^\n]", &run.start_epoch, &run.duration, &run.warmup,
			   &run.size, &pause_us, path) != 6 || run.size == 0 || run.duration <= 0)
			fail("bad command: %s", line);
		run.pause = pause_us / 1e6;
		char *buf = alloc_buffer(run.size);
		measure(path, &run, buf, results);
		free(buf);
	}
	return 0;
}

static void usage(const char *self)
{
	fprintf(stderr, "usage: %s [-d SECONDS] [-w SECONDS] [-b BYTES] [-p MICROSECONDS] [-t EPOCH] PATH...\n"
			"       %s -s DIR\n", self, self);
	exit(2);
}

int main(int argc, char **argv)
{
	struct run run = {0, 1.0, 0.2, 0, 65536};
	const char *serve_dir = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "d:w:b:p:t:s:")) != -1) {
		switch (opt) {
		case 'd':
			run.duration = parse_seconds(optarg, "duration");
			break;
		case 'w':
			run.warmup = parse_seconds(optarg, "warm-up");
			break;
		case 'b':
			run.size = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			run.pause = parse_seconds(optarg, "pause") / 1e6;
			break;
		case 't':
			run.start_epoch = parse_seconds(optarg, "start time");
			break;
		case 's':
			serve_dir = optarg;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (serve_dir != NULL)
		return optind == argc ? serve(serve_dir) : (usage(argv[0]), 2);
	if (optind >= argc || run.size == 0 || run.duration <= 0)
		usage(argv[0]);
	char *buf = alloc_buffer(run.size);
	for (int i = optind; i < argc; i++)
		measure(argv[i], &run, buf, stdout);
	free(buf);
	return 0;
}
