/*
 * mem.c - the in-memory shared disk (mem.h has the model and the API).
 *
 * A store: the visible image, with VCFS_MEM_VOLATILE the stable image and
 * the list of volatile writes (each tagged with the handle that issued it),
 * a dirty bitmap of 4 KiB blocks for vcfs_mem_restore, and a reference count
 * (the registry holds one, every handle one).
 *
 * Invariants (store.mu protects everything in a store; reg_mu the registry):
 *  - volatile records never overlap one another;
 *  - visible = stable + the volatile writes applied in issue order;
 *  - a volatile record was issued after the last flush (of any handle): a
 *    flush moves every record into stable;
 *  - FUA writes and CAS reach both images at once.
 * The hook runs before the store lock is taken, so it may call any mem.c
 * function (peek) or run other simulated hosts' I/O.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "disk_int.h"
#include "mem.h"

#define MEM_BLK 4096u

struct vol_rec {
	const struct vcfs_disk *h;	/* issuing handle */
	uint64_t off, len;
	uint8_t *data;			/* NULL: zeros */
};

struct store {
	char name[64];
	pthread_mutex_t mu;
	uint64_t size;
	unsigned flags;
	uint8_t *vis, *stable;		/* stable: VOLATILE stores only */
	uint8_t *dirty;			/* one bit per 4 KiB block */
	int restored_once;
	struct vol_rec *vol;
	size_t nvol, capvol;
	int refs;
	struct store *next;		/* registry */
};

struct mem_priv {
	struct store *s;
	uint32_t tag;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct store *reg;
static vcfs_mem_hook_fn hook_fn;
static void *hook_arg;

static const struct vcfs_disk_ops mem_ops;

static struct store *find_locked(const char *name)
{
	for (struct store *s = reg; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static struct store *get(const char *name)
{
	struct store *s;

	pthread_mutex_lock(&reg_mu);
	s = find_locked(name);
	if (s)
		s->refs++;
	pthread_mutex_unlock(&reg_mu);
	return s;
}

static void vol_free(struct store *s, size_t i)
{
	free(s->vol[i].data);
	s->vol[i] = s->vol[--s->nvol];
}

static void put(struct store *s)
{
	int last;

	pthread_mutex_lock(&reg_mu);
	last = --s->refs == 0;
	pthread_mutex_unlock(&reg_mu);
	if (!last)
		return;
	while (s->nvol)
		vol_free(s, 0);
	free(s->vol);
	free(s->vis);
	free(s->stable);
	free(s->dirty);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int vcfs_mem_create(const char *name, uint64_t size, unsigned flags)
{
	struct store *s;

	if (!name || strlen(name) >= sizeof(s->name) || size % MEM_BLK ||
	    size < VCFS_DISK_MIN_SIZE)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->size = size;
	s->flags = flags;
	s->refs = 1;
	s->vis = calloc(1, (size_t)size);
	s->dirty = calloc(1, (size_t)(size / MEM_BLK / 8 + 1));
	if (flags & VCFS_MEM_VOLATILE)
		s->stable = calloc(1, (size_t)size);
	if (!s->vis || !s->dirty || ((flags & VCFS_MEM_VOLATILE) && !s->stable)) {
		free(s->vis);
		free(s->dirty);
		free(s->stable);
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_lock(&reg_mu);
	if (find_locked(name)) {
		pthread_mutex_unlock(&reg_mu);
		s->refs = 1;
		put(s);
		return -EEXIST;
	}
	s->next = reg;
	reg = s;
	pthread_mutex_unlock(&reg_mu);
	return 0;
}

void vcfs_mem_destroy(const char *name)
{
	struct store *s, **pp;

	pthread_mutex_lock(&reg_mu);
	for (pp = &reg; (s = *pp); pp = &s->next)
		if (!strcmp(s->name, name))
			break;
	if (s)
		*pp = s->next;
	pthread_mutex_unlock(&reg_mu);
	if (s)
		put(s);
}

void vcfs_mem_set_hook(vcfs_mem_hook_fn fn, void *arg)
{
	hook_fn = fn;
	hook_arg = arg;
}

static void mark_dirty(struct store *s, uint64_t off, uint64_t len)
{
	for (uint64_t b = off / MEM_BLK; b < (off + len + MEM_BLK - 1) / MEM_BLK; b++)
		s->dirty[b / 8] |= (uint8_t)(1u << (b % 8));
}

static int hook(struct vcfs_disk *d, enum vcfs_disk_op op, uint64_t off, uint64_t len)
{
	struct mem_priv *p = d->priv;

	return hook_fn ? hook_fn(hook_arg, p->tag, op, off, len) : 0;
}

/* Put buf (NULL: zeros) at off in img. */
static void put_bytes(uint8_t *img, uint64_t off, const void *buf, uint64_t len)
{
	if (buf)
		memcpy(img + off, buf, (size_t)len);
	else
		memset(img + off, 0, (size_t)len);
}

/* Append a volatile record of handle h (a copy of buf; NULL: zeros). */
static int vol_add(struct store *s, const struct vcfs_disk *h, uint64_t off,
		   const uint8_t *buf, uint64_t len)
{
	if (s->nvol == s->capvol) {
		size_t nc = s->capvol ? 2 * s->capvol : 64;
		struct vol_rec *n = realloc(s->vol, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->vol = n;
		s->capvol = nc;
	}
	s->vol[s->nvol] = (struct vol_rec){ .h = h, .off = off, .len = len };
	if (buf) {
		s->vol[s->nvol].data = malloc((size_t)len);
		if (!s->vol[s->nvol].data)
			return -ENOMEM;
		memcpy(s->vol[s->nvol].data, buf, (size_t)len);
	}
	s->nvol++;
	return 0;
}

/* A write of any kind by handle d; durable: FUA or CAS.  s->mu held. */
static int apply_locked(struct vcfs_disk *d, uint64_t off, const void *buf, uint64_t len,
			int durable)
{
	struct store *s = ((struct mem_priv *)d->priv)->s;

	put_bytes(s->vis, off, buf, len);
	mark_dirty(s, off, len);
	if (!s->stable)
		return 0;
	/* the bytes this write covers are its own now: older volatile writes
	 * (any handle's) lose them, so a power cut never puts older bytes over
	 * newer ones (an array keeps the order of overlapping writes) */
	for (size_t i = 0; i < s->nvol;) {
		struct vol_rec *r = &s->vol[i];
		uint64_t re = r->off + r->len, e = off + len;
		if (re <= off || r->off >= e) {
			i++;
			continue;
		}
		if (r->off < off && re > e) {
			/* the middle goes: keep the tail as a record of its own */
			if (vol_add(s, r->h, e, r->data ? r->data + (e - r->off) : NULL, re - e))
				return -ENOMEM;
			r = &s->vol[i];
			r->len = off - r->off;
			i++;
		} else if (r->off < off) {
			r->len = off - r->off;		/* keep the head */
			i++;
		} else if (re > e) {
			uint64_t cut = e - r->off;	/* keep the tail */
			if (r->data)
				memmove(r->data, r->data + cut, (size_t)(re - e));
			r->off = e;
			r->len = re - e;
			i++;
		} else {
			vol_free(s, i);		/* all of it: swaps the last in */
		}
	}
	if (durable) {
		put_bytes(s->stable, off, buf, len);
		return 0;
	}
	return vol_add(s, d, off, buf, len);
}

/*
 * vol_free swaps records, so the list is not in issue order; nothing depends
 * on it: volatile records never overlap (a write trims the older ones), so
 * each holds exactly the visible bytes of its range.
 */
static int mem_flush(struct vcfs_disk *d)
{
	struct store *s = ((struct mem_priv *)d->priv)->s;
	int rc = hook(d, VCFS_OP_FLUSH, 0, 0);

	if (rc)
		return rc;
	pthread_mutex_lock(&s->mu);
	/* the cache is the array's: a flush from any path makes every write
	 * that completed before it stable (SYNCHRONIZE CACHE is LUN-wide) */
	while (s->stable && s->nvol) {
		struct vol_rec *r = &s->vol[0];
		put_bytes(s->stable, r->off, r->data, r->len);
		vol_free(s, 0);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static int mem_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	struct store *s = ((struct mem_priv *)d->priv)->s;
	int rc = hook(d, VCFS_OP_READ, off, len);

	if (rc)
		return rc;
	pthread_mutex_lock(&s->mu);
	memcpy(buf, s->vis + off, len);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static int mem_write_any(struct vcfs_disk *d, enum vcfs_disk_op op, uint64_t off,
			 const void *buf, uint64_t len, int durable)
{
	struct store *s = ((struct mem_priv *)d->priv)->s;
	int rc = hook(d, op, off, len);

	if (rc)
		return rc;
	pthread_mutex_lock(&s->mu);
	rc = apply_locked(d, off, buf, len, durable);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int mem_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		     unsigned flags)
{
	return mem_write_any(d, VCFS_OP_WRITE, off, buf, len, !!(flags & VCFS_IO_FUA));
}

static int mem_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	return mem_write_any(d, VCFS_OP_UNMAP, off, NULL, len, 0);
}

static int mem_write_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len, unsigned flags)
{
	return mem_write_any(d, VCFS_OP_ZEROES, off, NULL, len, !!(flags & VCFS_IO_FUA));
}

static int mem_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
		   const void *newdata)
{
	struct store *s = ((struct mem_priv *)d->priv)->s;
	uint32_t lsec = d->info.lsec;
	int rc = hook(d, VCFS_OP_CAS, off, lsec);

	if (rc)
		return rc;
	pthread_mutex_lock(&s->mu);
	if (memcmp(s->vis + off, expect, lsec))
		rc = -VCFS_EMISCOMPARE;
	else
		rc = apply_locked(d, off, newdata, lsec, 1);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static void mem_close(struct vcfs_disk *d)
{
	struct mem_priv *p = d->priv;

	if (p) {
		struct store *s = p->s;
		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < s->nvol;) {
			if (s->vol[i].h == d) {
				/* a closed handle's cache is the array's: it stays
				 * volatile until the store is cut or forgotten */
				s->vol[i].h = NULL;
			}
			i++;
		}
		pthread_mutex_unlock(&s->mu);
		put(s);
		free(p);
	}
	free(d);
}

static const struct vcfs_disk_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.flush = mem_flush,
	.cas = mem_cas,
	.unmap = mem_unmap,
	.write_zeroes = mem_write_zeroes,
	.close = mem_close,
};

int vcfs_mem_open(const char *name, uint32_t tag, const struct vcfs_disk_opts *o,
		  struct vcfs_disk **out)
{
	struct store *s = get(name);
	struct mem_priv *p;
	struct vcfs_disk *d;

	*out = NULL;
	if (!s)
		return -ENOENT;
	d = vcfs_disk_new(&mem_ops, o);
	p = calloc(1, sizeof(*p));
	if (!d || !p) {
		free(d);
		free(p);
		put(s);
		return -ENOMEM;
	}
	p->s = s;
	p->tag = tag;
	d->priv = p;
	d->info.size = s->size;
	d->info.lsec = 512;
	d->info.psec = MEM_BLK;
	d->info.max_io = 1u << 20;
	d->info.caps = VCFS_DISK_CAP_UNMAP | VCFS_DISK_CAP_FUA | VCFS_DISK_CAP_ZEROES |
		       VCFS_DISK_CAP_CAS_SHARED;
	d->info.cas_mode = VCFS_CAS_EMULATED;
	snprintf(d->info.backend, sizeof(d->info.backend), "mem");
	snprintf(d->info.desc, sizeof(d->info.desc), "mem:%s (tag %u)", name, tag);
	*out = d;
	return 0;
}

uint32_t vcfs_mem_tag(const struct vcfs_disk *d)
{
	return d && d->ops == &mem_ops ? ((struct mem_priv *)d->priv)->tag : 0;
}

static int two(const char *dst, const char *src, struct store **a, struct store **b)
{
	*a = get(dst);
	*b = get(src);
	if (*a && *b && (*a)->size == (*b)->size && *a != *b)
		return 0;
	if (*a)
		put(*a);
	if (*b)
		put(*b);
	return *a && *b ? -EINVAL : -ENOENT;
}

int vcfs_mem_restore(const char *dst, const char *src)
{
	struct store *a, *b;
	uint64_t nb;
	int rc = two(dst, src, &a, &b);

	if (rc)
		return rc;
	nb = a->size / MEM_BLK;
	pthread_mutex_lock(&a->mu);
	pthread_mutex_lock(&b->mu);
	for (uint64_t i = 0; i < nb; i++) {
		if (a->restored_once && !a->dirty[i / 8]) {
			i |= 7;		/* 8 clean blocks */
			continue;
		}
		if (a->restored_once && !(a->dirty[i / 8] & (1u << (i % 8))))
			continue;
		memcpy(a->vis + i * MEM_BLK, b->vis + i * MEM_BLK, MEM_BLK);
		if (a->stable)
			memcpy(a->stable + i * MEM_BLK, b->vis + i * MEM_BLK, MEM_BLK);
	}
	while (a->nvol)
		vol_free(a, 0);
	memset(a->dirty, 0, (size_t)(nb / 8 + 1));
	a->restored_once = 1;
	pthread_mutex_unlock(&b->mu);
	pthread_mutex_unlock(&a->mu);
	put(a);
	put(b);
	return 0;
}

int vcfs_mem_copy(const char *dst, const char *src)
{
	struct store *a, *b;
	int rc = two(dst, src, &a, &b);

	if (rc)
		return rc;
	pthread_mutex_lock(&a->mu);
	pthread_mutex_lock(&b->mu);
	memcpy(a->vis, b->vis, (size_t)a->size);
	if (a->stable)
		memcpy(a->stable, b->vis, (size_t)a->size);
	while (a->nvol)
		vol_free(a, 0);
	mark_dirty(a, 0, a->size);
	pthread_mutex_unlock(&b->mu);
	pthread_mutex_unlock(&a->mu);
	put(a);
	put(b);
	return 0;
}

int vcfs_mem_peek(const char *name, uint64_t off, void *buf, size_t len)
{
	struct store *s = get(name);
	int rc = 0;

	if (!s)
		return -ENOENT;
	pthread_mutex_lock(&s->mu);
	if (off > s->size || len > s->size - off)
		rc = -VCFS_ERANGE;
	else
		memcpy(buf, s->vis + off, len);
	pthread_mutex_unlock(&s->mu);
	put(s);
	return rc;
}

uint64_t vcfs_mem_dirty_blocks(const char *name)
{
	struct store *s = get(name);
	uint64_t n = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	for (uint64_t i = 0; i < s->size / MEM_BLK; i++)
		n += !!(s->dirty[i / 8] & (1u << (i % 8)));
	pthread_mutex_unlock(&s->mu);
	put(s);
	return n;
}

static uint64_t mix64(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int vcfs_mem_power_cut(const char *name, uint64_t seed, struct vcfs_mem_cut_stats *st)
{
	struct store *s = get(name);
	struct vcfs_mem_cut_stats z = { 0, 0, 0 };

	if (!s)
		return -ENOENT;
	if (!st)
		st = &z;
	*st = z;
	pthread_mutex_lock(&s->mu);
	if (!s->stable) {
		pthread_mutex_unlock(&s->mu);
		put(s);
		return -EINVAL;
	}
	/* shuffle (Fisher-Yates on the seed), then keep / drop / tear each */
	for (size_t i = s->nvol; i > 1; i--) {
		size_t j = (size_t)(mix64(seed, i) % i);
		struct vol_rec t = s->vol[i - 1];
		s->vol[i - 1] = s->vol[j];
		s->vol[j] = t;
	}
	for (size_t i = 0; i < s->nvol; i++) {
		struct vol_rec *r = &s->vol[i];
		uint64_t cut = (r->off + r->len / 2) / MEM_BLK * MEM_BLK;
		switch (mix64(seed ^ 0x5bd1e995u, i) % 3) {
		case 0:
			put_bytes(s->stable, r->off, r->data, r->len);
			st->kept++;
			break;
		case 1:
			st->dropped++;
			break;
		default:
			if (cut > r->off)
				put_bytes(s->stable, r->off, r->data, cut - r->off);
			st->torn++;
			break;
		}
	}
	while (s->nvol)
		vol_free(s, 0);
	memcpy(s->vis, s->stable, (size_t)s->size);
	mark_dirty(s, 0, s->size);
	pthread_mutex_unlock(&s->mu);
	put(s);
	return 0;
}
