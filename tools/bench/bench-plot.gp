# bench-plot.gp: tools/sluice-bench's plot. Two panels of grouped bars, one
# group per workload, one bar per server: req/s (median) above, server CPU
# µs per request below (log scales: the workloads differ by orders of
# magnitude). Called as
#   gnuplot -e "dat='x.dat'; out='x.png'; n=5; titles='sluice nginx ...'; heading='...'" bench-plot.gp
# x.dat: a header line, then "workload rps_1 cpu_1 rps_2 cpu_2 ..." ('-' = not run).
set terminal pngcairo size 1400,900 noenhanced font ",10"
set output out
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set logscale y
set xtics rotate by -20 nomirror
set multiplot layout 2,1 title heading
set ylabel "req/s (median)"
plot for [i=1:n] dat every ::1 using (column(2*i)):xtic(1) title word(titles, i)
set ylabel "server CPU µs / request"
plot for [i=1:n] dat every ::1 using (column(2*i+1)):xtic(1) title word(titles, i)
unset multiplot
