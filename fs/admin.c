/*
 * admin.c - read-only views of a datastore for the admin tool (admin.h).
 * Liveness here is judged the same way hosts judge it: by whether a slot's
 * counter changes on this machine's own clock, never by comparing clocks.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>
#include "admin.h"
#include "mkfs.h"
#include "../common/clock.h"
#include "../journal/journal.h"
#include "../lock/lock.h"
#include "../lock/rlock.h"

int vcfs_admin_space(struct vcfs_disk *d, const struct vcfs_sb *sb, struct vcfs_space *sp)
{
	uint32_t ncl = sb->ninode_clusters + sb->nsmall_clusters + sb->nlarge_clusters;
	uint8_t *buf = vcfs_disk_buf_alloc(2 * 128 * VCFS_BLK);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	memset(sp, 0, sizeof(*sp));
	sp->large_total = sb->nlarge;
	sp->small_total = sb->nsmall;
	sp->inodes_total = sb->ninodes;
	for (uint32_t c = 0; c < ncl && !rc; c += 128) {
		uint32_t n = ncl - c < 128 ? ncl - c : 128;
		rc = vcfs_disk_read(d, vcfs_cluster_lock_blk(sb, c) * VCFS_BLK, buf,
				    (size_t)n * 2 * VCFS_BLK);
		for (uint32_t i = 0; i < n && !rc; i++) {
			const struct vcfs_cbmp_disk *b = (const void *)(buf + (2 * (size_t)i + 1) * VCFS_BLK);
			uint64_t nfree;
			if (vcfs_mhdr_check(b, VCFS_T_CBMP, vcfs_cluster_bmp_blk(sb, c + i), sb->volgen))
				continue;	/* fsck reports it; count it as full */
			nfree = le32_get(b->nfree);
			switch (le32_get(b->kind)) {
			case VCFS_CK_INODE: sp->inodes_free += nfree; break;
			case VCFS_CK_SMALL: sp->small_free += nfree; break;
			case VCFS_CK_LARGE: sp->large_free += nfree; break;
			}
		}
	}
	free(buf);
	return rc;
}

int vcfs_admin_info(struct vcfs_disk *d, FILE *out, int json)
{
	struct vcfs_sb sb;
	struct vcfs_space sp;
	char u[37];
	int backup, rc;

	rc = vcfs_read_super(d, &sb, &backup);
	if (rc)
		return rc;
	rc = vcfs_admin_space(d, &sb, &sp);
	if (rc)
		return rc;
	uuid_unparse(sb.uuid, u);
	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
			"uuid", u, "label", sb.label,
			"size", (json_int_t)(sb.volume_blocks * VCFS_BLK),
			"block_size", (int)sb.lblock_size, "max_hosts", (int)sb.max_hosts,
			"io_timeout_ms", (int)sb.io_timeout_ms,
			"journal_kib", (int)(sb.journal_blocks * 4),
			"data_bytes", (json_int_t)(sp.large_total * sb.lblock_size),
			"data_free", (json_int_t)(sp.large_free * sb.lblock_size),
			"small_blocks", (json_int_t)sp.small_total,
			"small_free", (json_int_t)sp.small_free,
			"inodes", (json_int_t)sp.inodes_total,
			"inodes_free", (json_int_t)sp.inodes_free,
			"header_from_backup", backup);
		if (o) {
			json_object_set_new(o, "backend_bytes", json_integer((json_int_t)vcfs_disk_info(d)->size));
			json_object_set_new(o, "grow_limit_bytes", json_integer((json_int_t)vcfs_grow_limit(&sb)));
			json_object_set_new(o, "grow_in_progress", json_boolean(
				sb.feat_incompat & VCFS_FEAT_INCOMPAT_RESIZE_INPROG));
		}
		if (!o)
			return -ENOMEM;
		json_dumpf(o, out, JSON_COMPACT);
		fputc('\n', out);
		json_decref(o);
		return 0;
	}
	fprintf(out, "datastore:   %s\n", vcfs_disk_info(d)->desc);
	fprintf(out, "label:       %s\n", sb.label[0] ? sb.label : "(none)");
	fprintf(out, "uuid:        %s\n", u);
	fprintf(out, "format:      vcfs %d, features compat 0x%llx incompat 0x%llx ro 0x%llx\n",
		VCFS_FORMAT_VERSION, (unsigned long long)sb.feat_compat,
		(unsigned long long)sb.feat_incompat, (unsigned long long)sb.feat_ro_compat);
	fprintf(out, "size:        %llu MiB (backend %llu MiB; vcfs grow can reach %llu MiB)%s\n",
		(unsigned long long)(sb.volume_blocks * VCFS_BLK >> 20),
		(unsigned long long)(vcfs_disk_info(d)->size >> 20),
		(unsigned long long)(vcfs_grow_limit(&sb) >> 20),
		(sb.feat_incompat & VCFS_FEAT_INCOMPAT_RESIZE_INPROG) ?
		" -- a grow was interrupted: run vcfs grow" : "");
	fprintf(out, "block size:  %u KiB (files up to one block use 4 KiB blocks)\n",
		sb.lblock_size >> 10);
	fprintf(out, "hosts:       up to %u, journal %u KiB each\n", sb.max_hosts,
		sb.journal_blocks * 4);
	fprintf(out, "timing:      T=%u ms, renew %u ms, fence %u ms, dead %u ms\n",
		sb.io_timeout_ms, sb.io_timeout_ms, 4 * sb.io_timeout_ms, 7 * sb.io_timeout_ms);
	fprintf(out, "data:        %llu MiB free of %llu MiB\n",
		(unsigned long long)(sp.large_free * sb.lblock_size >> 20),
		(unsigned long long)(sp.large_total * sb.lblock_size >> 20));
	fprintf(out, "small:       %llu of %llu 4 KiB blocks free\n",
		(unsigned long long)sp.small_free, (unsigned long long)sp.small_total);
	fprintf(out, "inodes:      %llu of %llu free\n", (unsigned long long)sp.inodes_free,
		(unsigned long long)sp.inodes_total);
	if (backup)
		fprintf(out, "warning:     block 0 is damaged; read from the backup (run fsck.vcfs -y)\n");
	return 0;
}

static const char *state_name(enum vcfs_hb_state s)
{
	switch (s) {
	case VCFS_HB_FREE: return "free";
	case VCFS_HB_LIVE: return "live";
	case VCFS_HB_RECOVERING: return "recovering";
	}
	return "?";
}

int vcfs_admin_hosts(struct vcfs_disk *d, uint32_t watch_ms, FILE *out, int json)
{
	struct vcfs_slot_info *a = NULL, *b = NULL;
	struct vcfs_sb sb;
	json_t *arr = NULL;
	uint64_t t0, waited;
	int rc;

	rc = vcfs_read_super(d, &sb, NULL);
	if (rc)
		return rc;
	if (!watch_ms)
		watch_ms = 2 * sb.io_timeout_ms + sb.io_timeout_ms / 2;
	a = calloc(sb.max_hosts, sizeof(*a));
	b = calloc(sb.max_hosts, sizeof(*b));
	if (!a || !b) {
		rc = -ENOMEM;
		goto out;
	}
	t0 = vcfs_now_ns();
	rc = vcfs_hb_read_slots(d, &sb, a);
	if (rc)
		goto out;
	vcfs_sleep_ns((uint64_t)watch_ms * VCFS_NS_PER_MS);
	rc = vcfs_hb_read_slots(d, &sb, b);
	if (rc)
		goto out;
	waited = vcfs_now_ns() - t0;
	if (json)
		arr = json_array();
	else
		fprintf(out, "%-5s %-11s %-24s %-10s %-10s %-9s %s\n", "slot", "state", "host",
			"generation", "counter", "liveness", "journal");
	for (uint32_t s = 0; s < sb.max_hosts; s++) {
		struct vcfs_journal_state js = { 0 };
		const char *live;
		char jtxt[64];

		if (!b[s].valid || (b[s].state == VCFS_HB_FREE && a[s].state == VCFS_HB_FREE))
			continue;
		if (b[s].counter != a[s].counter || b[s].generation != a[s].generation ||
		    b[s].state != a[s].state)
			live = "live";
		else if (b[s].state == VCFS_HB_FREE)
			live = "-";
		else
			live = "silent";	/* dead once silent for 7T on a host's clock */
		vcfs_journal_inspect(d, &sb, s, &js);
		snprintf(jtxt, sizeof(jtxt), "%s", !js.initialised ? "unused" :
			 js.pending ? "pending replay" : "clean");
		if (json) {
			json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:s}",
				"slot", (int)s, "state", state_name(b[s].state),
				"host", b[s].host_name, "generation", (json_int_t)b[s].generation,
				"counter", (json_int_t)b[s].counter, "liveness", live,
				"journal", jtxt));
		} else {
			fprintf(out, "%-5u %-11s %-24.24s %-10llu %-10llu %-9s %s\n", s,
				state_name(b[s].state), b[s].host_name,
				(unsigned long long)b[s].generation,
				(unsigned long long)b[s].counter, live, jtxt);
		}
	}
	if (json) {
		json_t *o = json_pack("{s:o, s:f}", "slots", arr,
				      "watched_s", (double)waited / 1e9);
		json_dumpf(o, out, JSON_COMPACT);
		fputc('\n', out);
		json_decref(o);
	} else {
		fprintf(out, "(liveness from watching the counters for %.1f s; a host renews every "
			"%u ms and is declared dead after %u ms of silence)\n",
			(double)waited / 1e9, sb.io_timeout_ms, 7 * sb.io_timeout_ms);
	}
out:
	free(a);
	free(b);
	return rc;
}

static int rlock_stale(const struct vcfs_sb *sb, const struct vcfs_slot_info *slots,
		       const struct vcfs_rlock *e)
{
	return e->slot >= sb->max_hosts || slots[e->slot].state == VCFS_HB_FREE ||
	       (uint32_t)slots[e->slot].generation != e->gen;
}

int vcfs_admin_inode_lock(struct vcfs_disk *d, uint64_t ino, FILE *out, int json)
{
	struct vcfs_rlock_table rt;
	struct vcfs_lock_info li;
	struct vcfs_slot_info *slots;
	struct vcfs_sb sb;
	int rc;

	rc = vcfs_read_super(d, &sb, NULL);
	if (rc)
		return rc;
	if (ino == 0 || ino >= sb.ninodes)
		return -EINVAL;
	slots = calloc(sb.max_hosts, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	rc = vcfs_lock_read(d, &sb, NULL, vcfs_inode_lock_blk(&sb, ino), &li);
	if (!rc)
		rc = vcfs_rlock_read(d, &sb, vcfs_inode_lock_blk(&sb, ino), &rt);
	if (!rc)
		rc = vcfs_hb_read_slots(d, &sb, slots);
	if (rc)
		goto out;
	if (json) {
		json_t *h = json_array(), *r = json_array();
		for (uint32_t i = 0; i < rt.n; i++) {
			const struct vcfs_rlock *e = &rt.e[i];
			json_array_append_new(r, json_pack("{s:s, s:s, s:I, s:I, s:i, s:s, s:I, s:b}",
				"type", e->type == VCFS_RL_WRLCK ? "write" : "read",
				"kind", e->kind == VCFS_RL_FLOCK ? "flock" : "fcntl",
				"start", (json_int_t)e->start,
				"end", e->end == VCFS_RLOCK_EOF ? (json_int_t)-1 : (json_int_t)e->end,
				"slot", (int)e->slot,
				"host", e->slot < sb.max_hosts ? slots[e->slot].host_name : "?",
				"pid", (json_int_t)e->pid, "stale", rlock_stale(&sb, slots, e)));
		}
		for (uint32_t i = 0; i < li.nholders; i++) {
			uint32_t s = li.holders[i].slot;
			json_array_append_new(h, json_pack("{s:i, s:s, s:I, s:b}", "slot", (int)s,
				"host", s < sb.max_hosts ? slots[s].host_name : "?",
				"generation", (json_int_t)li.holders[i].gen,
				"map_claim", li.holders[i].claim));
		}
		json_t *o = json_pack("{s:I, s:s, s:I, s:I, s:o}", "inode", (json_int_t)ino,
				      "mode", vcfs_lock_mode_name(li.mode), "seq", (json_int_t)li.seq,
				      "obj_version", (json_int_t)li.obj_version, "holders", h);
		json_object_set_new(o, "byte_range_locks", r);
		json_dumpf(o, out, JSON_COMPACT);
		fputc('\n', out);
		json_decref(o);
		goto out;
	}
	fprintf(out, "inode %llu: lock %s, version %llu, object version %llu\n",
		(unsigned long long)ino, vcfs_lock_mode_name(li.mode),
		(unsigned long long)li.seq, (unsigned long long)li.obj_version);
	for (uint32_t i = 0; i < li.nholders; i++) {
		uint32_t s = li.holders[i].slot;
		int stale = s >= sb.max_hosts || slots[s].state == VCFS_HB_FREE ||
			    (uint32_t)slots[s].generation != li.holders[i].gen;
		fprintf(out, "  holder: slot %u, host %s, generation %u%s%s\n", s,
			s < sb.max_hosts ? slots[s].host_name : "?", li.holders[i].gen,
			li.holders[i].claim ? " (changing the block map)" : "",
			stale ? " (stale: that host is gone)" : "");
	}
	for (uint32_t i = 0; i < rt.n; i++) {
		const struct vcfs_rlock *e = &rt.e[i];
		char end[24];

		if (e->end == VCFS_RLOCK_EOF)
			snprintf(end, sizeof(end), "EOF");
		else
			snprintf(end, sizeof(end), "%llu", (unsigned long long)e->end);
		fprintf(out, "  byte-range lock: %s %s %llu-%s, slot %u, host %s, pid %u%s\n",
			e->kind == VCFS_RL_FLOCK ? "flock" : "fcntl",
			e->type == VCFS_RL_WRLCK ? "write" : "read", (unsigned long long)e->start,
			end, e->slot, e->slot < sb.max_hosts ? slots[e->slot].host_name : "?",
			e->pid, rlock_stale(&sb, slots, e) ? " (stale: that host is gone)" : "");
	}
out:
	free(slots);
	return rc;
}

/* CAS heartbeat slot s from the 4 KiB image `old` to `new` (both sealed). */
static int slot_cas(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t s,
		    const uint8_t *old, const uint8_t *newb)
{
	return vcfs_disk_cas(d, vcfs_hb_blk(sb, s) * VCFS_BLK, old, newb);
}

/* Recover dead slot s offline: claim, replay, free with generation + 1. */
static int recover_slot(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t s, FILE *out)
{
	uint8_t *old = vcfs_disk_buf_alloc(VCFS_BLK), *nb = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_hb_disk *h = (void *)nb;
	unsigned applied = 0;
	int rc = -ENOMEM;

	if (!old || !nb)
		goto out;
	rc = vcfs_disk_read(d, vcfs_hb_blk(sb, s) * VCFS_BLK, old, VCFS_BLK);
	if (rc)
		goto out;
	if (vcfs_mhdr_check(old, VCFS_T_HB, vcfs_hb_blk(sb, s), sb->volgen) != 0) {
		rc = -VCFS_ECORRUPT;
		goto out;
	}
	memcpy(nb, old, VCFS_BLK);
	h->state = le32_mk(VCFS_HB_RECOVERING);
	h->recoverer = le32_mk(VCFS_NO_SLOT);	/* an administrator, not a host */
	h->h.seq = le64_mk(le64_get(h->h.seq) + 1);
	vcfs_mhdr_reseal(nb);
	rc = slot_cas(d, sb, s, old, nb);	/* a racing survivor wins cleanly */
	if (rc)
		goto out;
	rc = vcfs_journal_replay(d, sb, s, NULL, &applied);
	if (rc)
		goto out;	/* left RECOVERING: a host or fsck finishes it */
	memcpy(old, nb, VCFS_BLK);
	h->state = le32_mk(VCFS_HB_FREE);
	h->generation = le64_mk(le64_get(h->generation) + 1);
	h->h.seq = le64_mk(le64_get(h->h.seq) + 1);
	vcfs_mhdr_reseal(nb);
	rc = slot_cas(d, sb, s, old, nb);
	if (!rc)
		fprintf(out, "recovered slot %u: journal replayed (%u block(s) written home), "
			"generation bumped: every lock it held is released\n", s, applied);
out:
	free(old);
	free(nb);
	return rc;
}

int vcfs_admin_break_lock(struct vcfs_disk *d, uint64_t ino,
			  int (*confirm)(void *arg, const char *text), void *arg, FILE *out)
{
	struct vcfs_slot_info *a = NULL, *b = NULL;
	struct vcfs_hb_timing tm;
	struct vcfs_lock_info li;
	struct vcfs_sb sb;
	uint32_t dead[VCFS_LOCK_HOLDERS], ndead = 0;
	char text[1024];
	size_t tl = 0;
	int rc;

	rc = vcfs_read_super(d, &sb, NULL);
	if (rc)
		return rc;
	if (ino == 0 || ino >= sb.ninodes)
		return -EINVAL;
	a = calloc(sb.max_hosts, sizeof(*a));
	b = calloc(sb.max_hosts, sizeof(*b));
	if (!a || !b) {
		rc = -ENOMEM;
		goto out;
	}
	rc = vcfs_lock_read(d, &sb, NULL, vcfs_inode_lock_blk(&sb, ino), &li);
	if (!rc)
		rc = vcfs_hb_read_slots(d, &sb, a);
	if (rc)
		goto out;
	for (uint32_t i = 0; i < li.nholders; i++) {
		uint32_t s = li.holders[i].slot;
		if (s < sb.max_hosts && a[s].valid && a[s].state != VCFS_HB_FREE &&
		    (uint32_t)a[s].generation == li.holders[i].gen)
			dead[ndead++] = s;	/* a valid holder: dead or alive, we will see */
	}
	if (li.mode == VCFS_LOCK_FREE || !ndead) {
		fprintf(out, "inode %llu is not locked by any host (%s%s)\n",
			(unsigned long long)ino, vcfs_lock_mode_name(li.mode),
			li.nholders ? ", only stale entries of hosts already recovered" : "");
		goto out;
	}
	vcfs_hb_timing_from(sb.io_timeout_ms, &tm);
	fprintf(out, "watching the holders' heartbeats for %.1f s (the dead threshold 7T)...\n",
		(double)tm.dead_ns / 1e9);
	fflush(out);
	vcfs_sleep_ns(tm.dead_ns);
	rc = vcfs_hb_read_slots(d, &sb, b);
	if (rc)
		goto out;
	for (uint32_t i = 0; i < ndead; i++) {
		uint32_t s = dead[i];
		if (b[s].counter != a[s].counter || b[s].generation != a[s].generation ||
		    b[s].state != a[s].state) {
			fprintf(out, "refusing: host '%s' (slot %u) holds the lock and is alive "
				"(its heartbeat is renewing); stop it there first\n",
				b[s].host_name, s);
			rc = -EBUSY;
			goto out;
		}
		tl += (size_t)snprintf(text + tl, sizeof(text) - tl, "%s'%s' (slot %u)",
				       i ? ", " : "", b[s].host_name, s);
		if (tl >= sizeof(text))
			tl = sizeof(text) - 1;
	}
	snprintf(text + tl, sizeof(text) - tl, " holds inode %llu's lock and has not renewed "
		 "its heartbeat for %.1f s: it is dead. Breaking the lock recovers it: its "
		 "journal is replayed and every lock it held is released.",
		 (unsigned long long)ino, (double)tm.dead_ns / 1e9);
	if (confirm && !confirm(arg, text)) {
		fprintf(out, "nothing changed\n");
		rc = -ECANCELED;
		goto out;
	}
	for (uint32_t i = 0; i < ndead && !rc; i++)
		rc = recover_slot(d, &sb, dead[i], out);
	if (!rc)
		fprintf(out, "inode %llu's lock is released\n", (unsigned long long)ino);
out:
	free(a);
	free(b);
	return rc;
}
