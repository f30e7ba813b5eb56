# bench/summary.sh - the one table of `make bench` (sourced by the benchmarks).
#
# Every benchmark prints its own detailed table; besides, each headline figure
# is recorded with bench_summary into $VCFS_BENCH_SUMMARY (set by bench/run.sh;
# when unset, nothing is recorded) and bench/run.sh prints them all at the end
# as one table: vcfs beside the baseline measured in the same run, the ratio,
# and the target the issues set.
#
#   bench_summary AREA WHAT VCFS BASELINE-NAME BASELINE RATIO TARGET
#
# Values are strings as they should appear ("1078 MiB/s", "655/1900 µs");
# RATIO is vcfs/baseline as a number or "-"; TARGET is free text or "-".

bench_summary() {
	[ -n "${VCFS_BENCH_SUMMARY:-}" ] || return 0
	local IFS='|'
	echo "$*" >> "$VCFS_BENCH_SUMMARY"
}

# bench_summary_print FILE: the Markdown table.
bench_summary_print() {
	[ -s "$1" ] || return 0
	awk -F'|' '
	function dlen(s) { gsub(/µ|≤|×/, "u", s); return length(s) }
	function pad(s, w, right,   n) { n = w - dlen(s); while (n-- > 0) s = right ? " " s : s " "; return s }
	{ for (c = 1; c <= 7; c++) { cell[NR, c] = $c; if (dlen($c) > w[c]) w[c] = dlen($c) } }
	END {
		split("area|measure|vcfs|baseline|baseline value|vcfs/baseline|target", h, "|")
		for (c = 1; c <= 7; c++) if (dlen(h[c]) > w[c]) w[c] = dlen(h[c])
		line = "|"; for (c = 1; c <= 7; c++) line = line " " pad(h[c], w[c], 0) " |"; print line
		line = "|"; for (c = 1; c <= 7; c++) { d = ""; while (length(d) < w[c] + 1) d = d "-"
			line = line (c == 3 || c == 5 || c == 6 ? d ":" : d "-") "|" }; print line
		for (r = 1; r <= NR; r++) { line = "|"
			for (c = 1; c <= 7; c++) line = line " " pad(cell[r, c], w[c], c == 3 || c == 5 || c == 6) " |"
			print line }
	}' "$1"
}
