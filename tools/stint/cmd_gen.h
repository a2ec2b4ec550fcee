/* cmd_gen.h - what `stint gen` writes besides the Last.fm 1K files, for its readers and tests. */
#ifndef STINT_CMD_GEN_H
#define STINT_CMD_GEN_H

#define GEN_CATALOG_FILE  "tracks.jsonl"     /* the track catalog, one JSON object per line */
#define GEN_SUMMARY_FILE  "gen-summary.json" /* what was planted: users, sessions, faults */
#define GEN_TRUTH_FILE    "gen-truth.tsv"    /* with --truth: what was drawn for each session */
#define GEN_SESSION_GAP_S 1800               /* the session gap the planted sessions follow */

#endif
