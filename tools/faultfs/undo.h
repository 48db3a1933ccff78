/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The power-cut journals of libvr-faultfs (figure 3), read back by vr-powercut.
 *
 * <undo>/f-<dev>-<ino>, one per file changed under VR_FAULT_DIR: records, each a header and
 * `len` bytes. The first is UNDO_PATH (the file's path; off = st_dev, old_size = st_ino; another
 * follows when the file is renamed), then one UNDO_DATA per change, in the order made: before the
 * change, the file was old_size bytes long and held these `len` bytes at off. Undoing the records
 * newest first (write the bytes back, truncate to old_size) gives the file as it was at its last
 * completed sync, when the journal was removed. A record cut short (the process was killed while
 * writing it) is the journal's end: its change had not been made yet.
 *
 * <undo>/created: lines "C <path>" for a file created under VR_FAULT_DIR, "R\t<from>\t<to>\t<kept>"
 * for a rename (kept: a hard link to the file it replaced, or "-"), and "S <dir>" for a
 * completed fsync of a directory. The cut takes back, newest first, every create and rename
 * that no later sync of its directory covers: a created file is removed, a renamed one goes
 * back to its old name and the file it replaced comes back.
 */
#ifndef VR_UNDO_H
#define VR_UNDO_H

#include <stdint.h>

#define UNDO_MAGIC 0x4e555256u /* "VRUN" */

enum { UNDO_PATH = 1, UNDO_DATA = 2 };

struct undo_rec {
	uint32_t magic;
	uint32_t kind;
	uint64_t off;
	uint64_t old_size;
	uint64_t len;
};

#endif
