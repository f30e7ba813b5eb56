/*
 * fault.c - the fault-injection layer (e2fsprogs test_io, SQLite's test VFS):
 * a backend that wraps any other and makes chosen operations fail or slow
 * down, so that tests reach the error paths of heartbeats, locks, journal and
 * filesystem without a misbehaving target.
 *
 * One rule per operation kind (enum vcfs_disk_op), plus one for VCFS_OP_ANY
 * that every operation also matches.  For each operation the layer counts
 * the matching ops of each rule that applies; a rule fires when its count
 * reaches nth (once), or from nth on when sticky.  A failing op never reaches
 * the lower disk, so a failed write leaves the old data in place: the
 * cleanest failure a real disk can give, which is the one tests want to
 * reason about.
 *
 * Invariants:
 *  - rules and counters are protected by fault_priv.mu; the count, the
 *    decision and the delay are taken in one critical section so that with
 *    many threads exactly one op is the nth;
 *  - the delay is slept outside the lock (other threads keep their own pace)
 *    and before the op, whether it then fails or not;
 *  - the wrapper never changes geometry: info is lower's apart from backend
 *    and desc, so disk.c splits requests exactly as it would for lower, and a
 *    write larger than max_io counts as several write ops.
 *
 * The VCFS_FAULT environment variable (read by vcfs_disk_open) uses the spec
 * syntax parsed by vcfs_fault_parse, e.g. "write:1:sticky:EIO,flush:3".
 *
 * Asynchronous requests (vcfs_disk_submit) run on a thread of their own
 * each: it counts the request (as READ or WRITE, as AIO, as ANY), sleeps the
 * delay, then fails it or does it on lower synchronously, and calls done().
 * So a delay or an error reaches the asynchronous path exactly as it reaches
 * the synchronous one, and an "aio" rule reaches only it: tests hold an
 * asynchronous write in flight while the filesystem changes the file's map.
 * fault_close waits for those threads first.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "disk_int.h"
#include "../common/clock.h"

struct fault_priv {
	pthread_mutex_t mu;
	/* rule[op].nth == 0 and delay_us == 0: no rule.  Protected by mu. */
	struct vcfs_fault_rule rule[VCFS_OP_NR];
	uint64_t count[VCFS_OP_NR];	/* matching ops since the rule was set */
	pthread_cond_t idle;		/* inflight fell to 0 */
	unsigned inflight;		/* asynchronous requests not done (mu) */
};

static const struct vcfs_disk_ops fault_ops;

static struct fault_priv *fault_priv_of(struct vcfs_disk *d)
{
	return d && d->ops == &fault_ops ? d->priv : NULL;
}

/* Does rule r fire for the op that has just become number n? */
static int rule_fires(const struct vcfs_fault_rule *r, uint64_t n)
{
	if (!r->nth)
		return 0;
	return r->sticky ? n >= r->nth : n == r->nth;
}

/*
 * Account one op of kind op against its own rule and the ANY rule, sleep any
 * delay, and return the injected error (negative) or 0 to go ahead.  When
 * both rules fire, the op's own rule gives the error: it is the more specific.
 * Takes and drops p->mu.
 */
static int fault_enter_as(struct vcfs_disk *d, enum vcfs_disk_op op, int aio)
{
	struct fault_priv *p = d->priv;
	uint64_t delay_us = 0;
	int err = 0;
	const enum vcfs_disk_op kinds[3] = { op, VCFS_OP_AIO, VCFS_OP_ANY };

	pthread_mutex_lock(&p->mu);
	for (int i = 2; i >= 0; i--) {	/* ANY first so that op's error wins */
		if (i == 1 && !aio)
			continue;
		const struct vcfs_fault_rule *r = &p->rule[kinds[i]];
		uint64_t n = ++p->count[kinds[i]];

		delay_us += r->delay_us;
		if (rule_fires(r, n))
			err = r->err ? r->err : -VCFS_EINJECTED;
	}
	pthread_mutex_unlock(&p->mu);
	if (delay_us)
		vcfs_sleep_ns(delay_us * 1000);
	return err;
}

static int fault_enter(struct vcfs_disk *d, enum vcfs_disk_op op)
{
	return fault_enter_as(d, op, 0);
}

struct fault_req {
	struct vcfs_disk *d;
	struct vcfs_disk_aio *a;
};

static void *fault_req_run(void *arg)
{
	struct fault_req *r = arg;
	struct vcfs_disk *d = r->d;
	struct vcfs_disk_aio *a = r->a;
	struct fault_priv *p = d->priv;
	int write = a->op == VCFS_AIO_WRITE;
	int rc = fault_enter_as(d, write ? VCFS_OP_WRITE : VCFS_OP_READ, 1);

	free(r);
	if (!rc)
		rc = write ? vcfs_disk_write(d->lower, a->off, a->buf, a->len, 0)
			   : vcfs_disk_read(d->lower, a->off, a->buf, a->len);
	a->done(a, rc);
	pthread_mutex_lock(&p->mu);
	if (--p->inflight == 0)
		pthread_cond_broadcast(&p->idle);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int fault_submit(struct vcfs_disk *d, struct vcfs_disk_aio *a)
{
	struct fault_priv *p = d->priv;
	struct fault_req *r = malloc(sizeof(*r));
	pthread_attr_t at;
	pthread_t t;
	int rc;

	if (!r)
		return -EAGAIN;
	*r = (struct fault_req){ d, a };
	pthread_mutex_lock(&p->mu);
	p->inflight++;
	pthread_mutex_unlock(&p->mu);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &at, fault_req_run, r);
	pthread_attr_destroy(&at);
	if (rc) {
		free(r);
		pthread_mutex_lock(&p->mu);
		if (--p->inflight == 0)
			pthread_cond_broadcast(&p->idle);
		pthread_mutex_unlock(&p->mu);
		return -EAGAIN;
	}
	return 0;
}

static int fault_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	int rc = fault_enter(d, VCFS_OP_READ);

	return rc ? rc : vcfs_disk_read(d->lower, off, buf, len);
}

static int fault_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		       unsigned flags)
{
	int rc = fault_enter(d, VCFS_OP_WRITE);

	return rc ? rc : vcfs_disk_write(d->lower, off, buf, len, flags);
}

static int fault_flush(struct vcfs_disk *d)
{
	int rc = fault_enter(d, VCFS_OP_FLUSH);

	return rc ? rc : vcfs_disk_flush(d->lower);
}

static int fault_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
		     const void *newdata)
{
	int rc = fault_enter(d, VCFS_OP_CAS);

	return rc ? rc : vcfs_disk_cas(d->lower, off, expect, newdata);
}

static int fault_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	int rc = fault_enter(d, VCFS_OP_UNMAP);

	return rc ? rc : vcfs_disk_unmap(d->lower, off, len);
}

static int fault_write_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len,
			      unsigned flags)
{
	int rc = fault_enter(d, VCFS_OP_ZEROES);

	return rc ? rc : vcfs_disk_write_zeroes(d->lower, off, len, flags);
}

static void fault_close(struct vcfs_disk *d)
{
	struct fault_priv *p = d->priv;

	if (p) {
		pthread_mutex_lock(&p->mu);
		while (p->inflight)
			pthread_cond_wait(&p->idle, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	vcfs_disk_close(d->lower);
	if (p) {
		pthread_cond_destroy(&p->idle);
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
	free(d);
}

static const struct vcfs_disk_ops fault_ops = {
	.read = fault_read,
	.write = fault_write,
	.flush = fault_flush,
	.cas = fault_cas,
	.unmap = fault_unmap,
	.write_zeroes = fault_write_zeroes,
	.close = fault_close,
	.submit = fault_submit,
};

/* "<prefix><lower desc>", cut to fit desc[] (snprintf would warn of truncation). */
static void fault_desc(char *out, size_t size, const char *prefix, const char *lower)
{
	size_t pl = strlen(prefix), ll = strlen(lower);

	if (pl >= size)
		pl = size - 1;
	memcpy(out, prefix, pl);
	if (ll > size - 1 - pl)
		ll = size - 1 - pl;
	memcpy(out + pl, lower, ll);
	out[pl + ll] = 0;
}

/*
 * Wrap lower.  On success the new disk owns lower (closing it closes lower);
 * on failure the caller still does.  No rule is set: every op goes through.
 */
int vcfs_fault_wrap(struct vcfs_disk *lower, struct vcfs_disk **out)
{
	struct vcfs_disk *d;
	struct fault_priv *p;

	*out = NULL;
	if (!lower)
		return -EINVAL;
	d = vcfs_disk_new(&fault_ops, &lower->opts);
	p = calloc(1, sizeof(*p));
	if (!d || !p) {
		free(d);
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->idle, NULL);
	d->priv = p;
	d->lower = lower;
	d->info = lower->info;
	snprintf(d->info.backend, sizeof(d->info.backend), "fault");
	fault_desc(d->info.desc, sizeof(d->info.desc), "fault:", lower->info.desc);
	*out = d;
	return 0;
}

int vcfs_fault_set(struct vcfs_disk *fault, const struct vcfs_fault_rule *rule)
{
	struct fault_priv *p = fault_priv_of(fault);

	if (!p || !rule || (unsigned)rule->op >= VCFS_OP_NR || rule->err > 0)
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	p->rule[rule->op] = *rule;
	p->count[rule->op] = 0;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* Remove every rule and restart every counter. */
void vcfs_fault_clear(struct vcfs_disk *fault)
{
	struct fault_priv *p = fault_priv_of(fault);

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	memset(p->rule, 0, sizeof(p->rule));
	memset(p->count, 0, sizeof(p->count));
	pthread_mutex_unlock(&p->mu);
}

uint64_t vcfs_fault_count(struct vcfs_disk *fault, enum vcfs_disk_op op)
{
	struct fault_priv *p = fault_priv_of(fault);
	uint64_t n;

	if (!p || (unsigned)op >= VCFS_OP_NR)
		return 0;
	pthread_mutex_lock(&p->mu);
	n = p->count[op];
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* ---- the spec parser ---- */

static const char *const op_names[VCFS_OP_NR] = {
	[VCFS_OP_READ] = "read", [VCFS_OP_WRITE] = "write", [VCFS_OP_FLUSH] = "flush",
	[VCFS_OP_CAS] = "cas", [VCFS_OP_UNMAP] = "unmap", [VCFS_OP_ZEROES] = "zeroes",
	[VCFS_OP_AIO] = "aio",
	[VCFS_OP_ANY] = "any",
};

/* The errors a disk plausibly returns; project codes come from the X-macro. */
static const struct { const char *name; int err; } errno_names[] = {
	{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "ETIMEDOUT", ETIMEDOUT },
	{ "EROFS", EROFS }, { "ENOTCONN", ENOTCONN }, { "ECONNRESET", ECONNRESET },
	{ "ECONNREFUSED", ECONNREFUSED }, { "EHOSTUNREACH", EHOSTUNREACH },
	{ "EAGAIN", EAGAIN }, { "EINTR", EINTR }, { "ENOMEM", ENOMEM },
	{ "EBUSY", EBUSY }, { "ENODEV", ENODEV }, { "ENXIO", ENXIO },
	{ "EPERM", EPERM }, { "EACCES", EACCES }, { "EINVAL", EINVAL },
	{ "ESTALE", ESTALE }, { "EREMOTEIO", EREMOTEIO }, { "EDQUOT", EDQUOT },
	{ "EFBIG", EFBIG }, { "EPIPE", EPIPE },
#define FAULT_ERR_NAME(name, val, msg) { #name, val },
	VCFS_ERRORS(FAULT_ERR_NAME)
#undef FAULT_ERR_NAME
};

/* Decimal digits only, no sign, no overflow past max. */
static int parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!n || n > 20)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "EIO", "VCFS_EINJECTED", "EINJECTED" or a number ("5"); *err negative. */
static int parse_err(const char *s, size_t n, int *err)
{
	uint64_t v;

	if (!parse_uint(s, n, VCFS_ERR_BASE + 1000, &v)) {
		if (!v)
			return -EINVAL;	/* "0" would read as "the default error" */
		*err = -(int)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++) {
		const char *name = errno_names[i].name;
		if (!strncmp(name, "VCFS_", 5) && !(n > 5 && !strncasecmp(s, "VCFS_", 5)))
			name += 5;	/* project codes also without their prefix */
		if (strlen(name) == n && !strncasecmp(s, name, n)) {
			*err = -errno_names[i].err;
			return 0;
		}
	}
	return -EINVAL;
}

/* One "op:nth[:sticky][:errno][:delay=us]" rule from s[0..n). */
static int parse_rule(const char *s, size_t n, struct vcfs_fault_rule *r)
{
	const char *end = s + n, *f = s;
	int field = 0, have_sticky = 0, have_err = 0, have_delay = 0;

	memset(r, 0, sizeof(*r));
	while (f <= end) {
		const char *c = memchr(f, ':', (size_t)(end - f));
		size_t fl = c ? (size_t)(c - f) : (size_t)(end - f);
		uint64_t v;

		if (!fl)
			return -EINVAL;
		if (field == 0) {
			int op = -1;
			for (int i = 0; i < VCFS_OP_NR; i++)
				if (strlen(op_names[i]) == fl && !strncasecmp(f, op_names[i], fl))
					op = i;
			if (op < 0)
				return -EINVAL;
			r->op = (enum vcfs_disk_op)op;
		} else if (field == 1) {
			if (parse_uint(f, fl, UINT64_MAX, &r->nth))
				return -EINVAL;
		} else if (fl == 6 && !strncasecmp(f, "sticky", 6)) {
			if (have_sticky++)
				return -EINVAL;
			r->sticky = 1;
		} else if (fl > 6 && !strncasecmp(f, "delay=", 6)) {
			if (have_delay++ || parse_uint(f + 6, fl - 6, UINT32_MAX, &v))
				return -EINVAL;
			r->delay_us = (uint32_t)v;
		} else {
			if (have_err++ || parse_err(f, fl, &r->err))
				return -EINVAL;
		}
		field++;
		if (!c)
			break;
		f = c + 1;
		if (f == end)
			return -EINVAL;	/* trailing ':' */
	}
	return field >= 2 ? 0 : -EINVAL;
}

/*
 * Parse a comma-separated list of rules and set them.  All or nothing: on
 * -EINVAL (bad syntax, unknown op or error name, two rules for one op) no
 * rule changes.  Ops not named keep their rules.
 */
int vcfs_fault_parse(struct vcfs_disk *fault, const char *spec)
{
	struct vcfs_fault_rule rules[VCFS_OP_NR];
	int seen[VCFS_OP_NR] = { 0 }, nr = 0;
	const char *s = spec;

	if (!fault_priv_of(fault) || !spec || !*spec)
		return -EINVAL;
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);

		if (nr == VCFS_OP_NR || parse_rule(s, n, &rules[nr]) ||
		    seen[rules[nr].op]++)
			return -EINVAL;
		nr++;
		if (!comma)
			break;
		s = comma + 1;
	}
	for (int i = 0; i < nr; i++)
		vcfs_fault_set(fault, &rules[i]);
	return 0;
}
