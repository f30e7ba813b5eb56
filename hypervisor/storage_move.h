/*
 * storage_move.h - Storage vMotion: move every disk of a VM to another folder
 * (another datastore) while the guest runs, or copy it offline when stopped.
 * The design is in agent.h ("Storage vMotion"); storage_move.c has the steps.
 *
 * Where the disks go (--to DIR):
 *   DIR is the VM's own folder      -> back into it (vm.json: relative names)
 *   DIR's last component is the name -> into DIR (created if missing)
 *   otherwise (a datastore)         -> into DIR/<name>/ (created if missing)
 * and vm.json names the new file by absolute path (relative in the folder).
 * A file of the same name already there is never overwritten (-EEXIST).
 *
 * One move per VM at a time: the mover holds the VM's run lock (the flock
 * start/stop/reset take, vm.h) for the whole move, so a stop waits for it.
 * What the move is doing is recorded in <run_dir>/<uuid>/move.json (pid,
 * source and target of each disk, QEMU node names), so that a cancel from
 * another process, or the cleanup after a mover that died, knows what to undo.
 */
#ifndef VCVM_STORAGE_MOVE_H
#define VCVM_STORAGE_MOVE_H

#include <jansson.h>
#include <stdint.h>
#include "hypervisor/agent.h"

/*
 * Move disk `disk` (-1: every disk) of the VM in folder dir to `to`.
 * max_bandwidth: bytes/s of the background copy, 0 = unlimited.
 * progress (may be NULL) is called about twice a second: phase "mirror"
 * (live) or "copy" (offline), done/total in bytes, then "switch-over".
 * Returns 0 and *data (what moved where, bytes, seconds), or -errno /
 * -VCVM_* with why naming the disk, the file and what to do.  On any
 * failure before the switch-over the VM keeps running on its old disks,
 * vm.json is unchanged and no target file is left.
 * -ECANCELED when cancelled (vcvm_move_cancel or vcvm_move_interrupt).
 */
int vcvm_move_storage(const struct vcvm_env *e, const char *dir, const char *to, int disk,
		      uint64_t max_bandwidth, vcvm_progress_fn progress, void *arg,
		      json_t **data, char *why, size_t whylen);

/*
 * Cancel the move of the VM in dir.  A live mover is asked to stop (it
 * cancels its block jobs and removes its targets; this waits for it); the
 * leftovers of a mover that died are cleaned up here: a disk QEMU already
 * switched to is kept (vm.json updated, old file removed), any other target
 * is removed.  -ENOENT if no move is recorded.  *data says what was done.
 */
int vcvm_move_cancel(const struct vcvm_env *e, const char *dir, json_t **data,
		     char *why, size_t whylen);

/* Ask the move running in this process to cancel (async-signal-safe). */
void vcvm_move_interrupt(void);

#endif
