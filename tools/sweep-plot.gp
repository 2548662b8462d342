# sweep-plot.gp: the plots of tools/sluice-sweep, from the plot-*.dat files it
# writes. Not meant to be run by hand, but it can be:
#
#   gnuplot -e "dir='out/sweep-X'; out='out/sweep-X/sweep.png'; fmt='png'; \
#               mode='sweep'; nconf=1; titles='sluice'; satx=12000; sat2x=24000; \
#               loadmode='sessions'; timeout_s=5" tools/sweep-plot.gp
#
# mode 'sweep': six panels: replies/s and Mbit/s against offered rate (paper
# figures 6 and 7), mean and p99 response time (figure 8), and per-stage queue
# depth, queue wait and busy share over the sweep's time line.
# mode 'tuning': one line per configuration (index i of plot-steps.dat,
# labelled by word i+1 of titles): goodput, Mbit/s, p99 and mean latency.

if (fmt eq 'svg') {
    set terminal svg size 1350,900 dynamic enhanced font 'Helvetica,11' background rgb 'white'
} else {
    set terminal pngcairo size 1260,840 enhanced font 'Helvetica,8.5' background rgb 'white'
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
set style line 9 lc rgb '#888888' lw 1 dt 2
set format x '%.0s%c'
steps = dir.'/plot-steps.dat'
stg = dir.'/plot-stages.dat'
srv = dir.'/plot-server.dat'
offlabel = 'offered load (requests/s'.(loadmode eq 'sessions' ? ', sessions x mean length)' : ')')

# Vertical marks at saturation and twice it (sweep mode).
if (satx > 0) {
    set arrow 1 from satx, graph 0 to satx, graph 1 nohead ls 9
    set label 1 'saturation' at satx, graph 0.04 offset 0.5,0 tc rgb '#666666'
}
if (sat2x > 0) {
    set arrow 2 from sat2x, graph 0 to sat2x, graph 1 nohead ls 9
    set label 2 '2x' at sat2x, graph 0.04 offset 0.5,0 tc rgb '#666666'
}

if (mode eq 'tuning') {
    set offsets 0, graph 0.05, 0, 0
    set multiplot layout 2,2 title 'sluice tuning: writer threads x max\_connections (w = writers, c = max\_connections)' font ',14'
    set xlabel offlabel
    set ylabel 'good replies/s'
    set title 'Throughput (cf. paper fig. 6)'
    plot for [i=0:nconf-1] steps index i using 1:2 with linespoints ls (i+1) title word(titles, i+1), \
         steps index 0 using 1:1 with lines ls 9 title 'offered'
    set key top left
    set ylabel 'Mbit/s'
    set title 'Throughput, Mbit/s'
    plot for [i=0:nconf-1] steps index i using 1:4 with linespoints ls (i+1) title word(titles, i+1)
    set logscale y
    set format y '%g'
    set ylabel 'ms (log)'
    set title 'p99 response time of good replies, from when due'
    plot for [i=0:nconf-1] steps index i using 1:($7 > 0 ? $7 : 1/0) with linespoints ls (i+1) title word(titles, i+1)
    set title 'Mean response time (cf. paper fig. 8)'
    plot for [i=0:nconf-1] steps index i using 1:($5 > 0 ? $5 : 1/0) with linespoints ls (i+1) title word(titles, i+1)
    unset multiplot
    exit
}

set multiplot layout 2,3 title 'sluice under overload: '.loadmode.' workload, client timeout '.sprintf('%g', timeout_s).' s' font ',14'

# --- against offered load (a little room on the right for the '2x' label)
set offsets 0, graph 0.05, 0, 0
set xlabel offlabel
set ylabel 'replies/s'
set title 'Throughput (cf. paper figs. 6, 7)'
plot steps index 0 using 1:1 with lines ls 9 title 'offered', \
     steps index 0 using 1:3 with linespoints ls 2 title 'all replies/s', \
     steps index 0 using 1:2 with linespoints ls 1 title 'good replies/s'

set ylabel 'Mbit/s'
set title 'Throughput, Mbit/s received by clients'
plot steps index 0 using 1:4 with linespoints ls 1 title 'Mbit/s'

set logscale y
set format y '%g'
set ylabel 'ms (log)'
set title 'Response time of good replies, from when due (cf. fig. 8)'
plot steps index 0 using 1:($5 > 0 ? $5 : 1/0) with linespoints ls 1 title 'mean', \
     steps index 0 using 1:($7 > 0 ? $7 : 1/0) with linespoints ls 2 title 'p99', \
     steps index 0 using 1:($6 > 0 ? $6 : 1/0) with linespoints ls 3 title 'p50'
unset logscale y
unset arrow 1
unset arrow 2
unset label 1
unset label 2

# --- over time: the stages, with the offered load on the right axis
set offsets 0, 0, 0, 0
set xlabel 'time since the start of the sweep (s); the server restarts at each step'
set format x '%g'
set y2label 'offered requests/s'
set y2tics
set ytics nomirror
set format y2 '%.0s%c'
set key top left

set ylabel 'items queued (log)'
set logscale y
set title 'Queue depth per stage (sampled every 0.5 s)'
plot stg index 0 using 1:($2 > 0 ? $2 : 1/0) with lines ls 1 title 'acceptor (kernel accept queue)', \
     stg index 1 using 1:($2 > 0 ? $2 : 1/0) with lines ls 2 title 'reader', \
     stg index 2 using 1:($2 > 0 ? $2 : 1/0) with lines ls 3 title 'detector', \
     stg index 3 using 1:($2 > 0 ? $2 : 1/0) with lines ls 4 title 'writer', \
     stg index 1 using 1:6 axes x1y2 with lines ls 9 title 'offered'

set ylabel 'ms (log)'
set title 'Mean queue wait per stage over each 0.5 s'
plot stg index 1 using 1:3 with lines ls 2 title 'reader', \
     stg index 2 using 1:3 with lines ls 3 title 'detector', \
     stg index 3 using 1:3 with lines ls 4 title 'writer', \
     stg index 1 using 1:6 axes x1y2 with lines ls 9 title 'offered'
unset logscale y

set ylabel 'busy share of the stage threads'
set yrange [0:*]
set title 'Busy share per stage'
plot stg index 0 using 1:4 with lines ls 1 title 'acceptor', \
     stg index 1 using 1:4 with lines ls 2 title 'reader', \
     stg index 2 using 1:4 with lines ls 3 title 'detector', \
     stg index 3 using 1:4 with lines ls 4 title 'writer', \
     stg index 1 using 1:6 axes x1y2 with lines ls 9 title 'offered'
unset multiplot
