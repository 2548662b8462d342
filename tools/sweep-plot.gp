# sweep-plot.gp: the plots of tools/sluice-sweep, from the plot-*.dat files it
# writes. Not meant to be run by hand, but it can be:
#
#   gnuplot -e "dir='out/sweep-X'; out='out/sweep-X/sweep.png'; fmt='png'; \
#               mode='sweep'; nconf=2; titles='sluice nginx'; \
#               budget='budget per server: 0.25 CPU'; stagecfg='sluice'; \
#               loadmode='sessions'; lagmax=50; reps=1" tools/sweep-plot.gp
#
# Fourteen panels. Top row, against offered load, one line per server (index i
# of plot-steps.dat, labelled by word i+1 of titles; paper figures 6-8 with
# today's servers): goodput within the deadline, p99 of admitted requests,
# 503 replies per second, sessions completed within the deadline per second.
# A step whose client lagged its schedule (INVALID) is circled in black.
# With --repeat (reps runs per step) every point is the step's median run and
# goodput has error bars from the lowest to the highest of its runs.
# Middle row, against offered load: p50 and p99.9 of admitted requests,
# connect failures + resets after accept + client timeouts per second, the
# client's schedule lag (the INVALID limit dashed), server CPU per reply.
# Bottom row, sluice (config stagecfg) over the sweep's time line: queue
# depth, mean queue wait and busy share per stage, and requests shed per
# second by reason; last row, its admission controller over the same time
# line: the limit, open connections, connections waiting in the accept queue
# and the listen backlog, the accept queue length the SYN gate keeps to, and
# the mean queue wait inside sluice per interval.
# plot-server.dat columns: 1 t, 2 conns, 3 requests/s, 4 Mbit/s, 5 offered,
# 6 shed/s, 7-10 shed/s by reason, 11 limit, 12 admitted, 13 waiting,
# 14 backlog, 15 gate's queue target, 16 mean queue wait ms, 17 SYN filter
# shedding (0/1), 18 retransmitted SYNs dropped, 19 new SYNs gated.
# plot-steps.dat columns: 1 offered, 2 goodput, 3 replies/s, 4 p99 ms,
# 5 503/s, 6 p50 ms, 7 p99.9 ms, 8 sessions ok/s, 9 invalid (0/1), 10 Mbit/s,
# 11 connect failures/s, 12 resets after accept/s, 13 client timeouts/s,
# 14 lag p99 ms, 15 server CPU us/reply, 16-17 lowest and highest goodput of
# the step's runs (NaN with one run: no bar).

if (fmt eq 'svg') {
    set terminal svg size 1800,1700 dynamic enhanced font 'Helvetica,11' background rgb 'white'
} else {
    set terminal pngcairo size 1800,1700 enhanced font 'Helvetica,9' background rgb 'white'
}
set output out
set datafile missing '?'
set grid lc rgb '#dddddd'
set key top left opaque box lc rgb '#bbbbbb'
set style line 1 lc rgb '#1f77b4' lw 2 pt 7 ps 0.8
set style line 2 lc rgb '#d62728' lw 2 pt 5 ps 0.8
set style line 3 lc rgb '#2ca02c' lw 2 pt 9 ps 0.8
set style line 4 lc rgb '#9467bd' lw 2 pt 11 ps 0.8
set style line 5 lc rgb '#ff7f0e' lw 2 pt 13 ps 0.8
set style line 6 lc rgb '#8c564b' lw 2 pt 3 ps 0.8
set style line 7 lc rgb '#e377c2' lw 2 pt 15 ps 0.8
set style line 8 lc rgb '#17becf' lw 2 pt 1 ps 0.8
set style line 9 lc rgb '#888888' lw 1 dt 2
set style line 10 lc rgb '#000000' lw 1.5 pt 6 ps 2.2
set format x '%.1s%c'
if (!exists('reps')) reps = 1
steps = dir.'/plot-steps.dat'
stg = dir.'/plot-stages.dat'
srv = dir.'/plot-server.dat'
offlabel = 'offered load (requests/s'.(loadmode eq 'sessions' ? ', sessions x length)' : ')')
what = (mode eq 'tuning') ? 'sluice tuning (w = writer threads, c = max\_connections)' : 'under overload'

set multiplot layout 4,4 title what.': '.budget font ',13'

set offsets 0, graph 0.05, 0, 0
set xlabel offlabel
set ylabel 'replies/s within the deadline'
set title 'Goodput (cf. paper fig. 6); circled: INVALID'.(reps > 1 ? sprintf('; medians of %d runs, bars min-max', reps) : '')
# The bars first: gnuplot clears a gap around an error bar's point, which
# would cut into the line and the point drawn before it. A step with one run
# (NaN bounds) gets no bar: the comparison with NaN is false.
plot for [i=0:nconf-1] steps index i using 1:($17 > $16 ? $2 : 1/0):16:17 with yerrorbars ls (i+1) notitle, \
     for [i=0:nconf-1] steps index i using 1:2 with linespoints ls (i+1) title word(titles, i+1), \
     for [i=0:nconf-1] steps index i using 1:($9 > 0 ? $2 : 1/0) with points ls 10 notitle, \
     steps index 0 using 1:1 with lines ls 9 title 'offered'

set logscale y
set format y '%g'
set ylabel 'ms (log)'
set title 'p99 of admitted requests, from when due (cf. fig. 8)'
plot for [i=0:nconf-1] steps index i using 1:($4 > 0 ? $4 : 1/0) with linespoints ls (i+1) title word(titles, i+1), \
     for [i=0:nconf-1] steps index i using 1:($9 > 0 && $4 > 0 ? $4 : 1/0) with points ls 10 notitle
unset logscale y
set format y '%g'

set ylabel '503 replies/s'
set yrange [0:*]
set title '503 replies per second'
plot for [i=0:nconf-1] steps index i using 1:5 with linespoints ls (i+1) title word(titles, i+1), \
     steps index 0 using 1:(0) with lines ls 9 notitle

set ylabel 'sessions/s'
set title 'Sessions completed within the deadline'
plot for [i=0:nconf-1] steps index i using 1:8 with linespoints ls (i+1) title word(titles, i+1), \
     steps index 0 using 1:(0) with lines ls 9 notitle
set autoscale y

# --- middle row: the other measures against offered load
set logscale y
set ylabel 'ms (log)'
set title 'p50 (solid) and p99.9 (dashed) of admitted requests'
plot for [i=0:nconf-1] steps index i using 1:($6 > 0 ? $6 : 1/0) with linespoints ls (i+1) title word(titles, i+1), \
     for [i=0:nconf-1] steps index i using 1:($7 > 0 ? $7 : 1/0) with linespoints ls (i+1) dt 2 notitle
unset logscale y

set ylabel 'per second'
set yrange [0:*]
set title 'Connect failures (solid), resets after accept (dashed), client timeouts (dotted)'
plot for [i=0:nconf-1] steps index i using 1:11 with linespoints ls (i+1) title word(titles, i+1), \
     for [i=0:nconf-1] steps index i using 1:12 with linespoints ls (i+1) dt 2 notitle, \
     for [i=0:nconf-1] steps index i using 1:13 with linespoints ls (i+1) dt 3 notitle, \
     steps index 0 using 1:(0) with lines ls 9 notitle
set autoscale y

set logscale y
set ylabel 'ms (log)'
set title sprintf('Client schedule lag p99 (INVALID above %g ms)', lagmax)
plot for [i=0:nconf-1] steps index i using 1:($14 > 0 ? $14 : 1/0) with linespoints ls (i+1) title word(titles, i+1), \
     lagmax with lines ls 9 title 'limit'
unset logscale y

set ylabel 'us'
set yrange [0:*]
set title 'Server CPU per reply (from its cgroup)'
plot for [i=0:nconf-1] steps index i using 1:15 with linespoints ls (i+1) title word(titles, i+1), \
     steps index 0 using 1:(0) with lines ls 9 notitle
set autoscale y

# --- over time: sluice's stages, with the offered load on the right axis
set offsets 0, 0, 0, 0
set xlabel 'time since the start of the sweep (s); '.stagecfg.' restarts at each of its steps'
set format x '%g'
set y2label 'offered requests/s'
set y2tics
set ytics nomirror
set format y2 '%.0s%c'
set key top left noopaque  # over time the data fill the width: keep them visible under the key

set ylabel 'items queued (log)'
set logscale y
set format y '%g'
set title stagecfg.': queue depth per stage (every 0.5 s)'
plot stg index 0 using 1:($2 > 0 ? $2 : 1/0) with lines ls 1 title 'acceptor (accept queue)', \
     stg index 1 using 1:($2 > 0 ? $2 : 1/0) with lines ls 2 title 'reader', \
     stg index 2 using 1:($2 > 0 ? $2 : 1/0) with lines ls 3 title 'detector', \
     stg index 3 using 1:($2 > 0 ? $2 : 1/0) with lines ls 4 title 'writer', \
     stg index 1 using 1:6 axes x1y2 with lines ls 9 title 'offered'

set ylabel 'ms (log)'
set title stagecfg.': mean queue wait per stage'
plot stg index 1 using 1:3 with lines ls 2 title 'reader', \
     stg index 2 using 1:3 with lines ls 3 title 'detector', \
     stg index 3 using 1:3 with lines ls 4 title 'writer', \
     stg index 1 using 1:6 axes x1y2 with lines ls 9 title 'offered'
unset logscale y

set ylabel 'busy share of the stage threads'
set yrange [0:*]
set title stagecfg.': busy share per stage'
plot stg index 0 using 1:4 with lines ls 1 title 'acceptor', \
     stg index 1 using 1:4 with lines ls 2 title 'reader', \
     stg index 2 using 1:4 with lines ls 3 title 'detector', \
     stg index 3 using 1:4 with lines ls 4 title 'writer', \
     stg index 1 using 1:6 axes x1y2 with lines ls 9 title 'offered'

set ylabel 'shed per second'
set format y '%g'
set title stagecfg.': shed by reason'
plot srv using 1:7 with lines ls 2 title '503 queue wait', \
     srv using 1:8 with lines ls 3 title '503 at max\_connections', \
     srv using 1:9 with lines ls 4 title 'closed at max\_connections', \
     srv using 1:10 with lines ls 5 title 'idle closed for room', \
     srv using 1:5 axes x1y2 with lines ls 9 title 'offered'

set ylabel 'connections (log)'
set logscale y
set yrange [*:*]
set title stagecfg.': admission limit, open, waiting in the accept queue, backlog'
plot srv using 1:($11 > 0 ? $11 : 1/0) with lines ls 2 title 'limit', \
     srv using 1:($12 > 0 ? $12 : 1/0) with lines ls 1 title 'open', \
     srv using 1:($13 > 0 ? $13 : 1/0) with lines ls 5 title 'waiting', \
     srv using 1:($14 > 0 ? $14 : 1/0) with lines ls 4 title 'backlog', \
     srv using 1:($15 > 0 ? $15 : 1/0) with lines ls 6 title 'gate target', \
     srv using 1:5 axes x1y2 with lines ls 9 title 'offered'

set ylabel 'ms (log)'
# Fixed: with readers that accept, the wait inside sluice is often below the
# axis (0) all sweep long, and autoscaling a range with no point fails.
set yrange [0.01:1000]
set title stagecfg.': mean queue wait inside sluice per interval'
plot srv using 1:($16 > 0 ? $16 : 1/0) with lines ls 3 title 'mean wait', \
     srv using 1:5 axes x1y2 with lines ls 9 title 'offered'
unset logscale y
unset multiplot
