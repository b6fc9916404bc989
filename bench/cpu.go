package bench

import (
	"os"
	"strconv"
	"strings"
)

// cpuTimes is the machine-wide CPU time from /proc/stat, in seconds: what
// every process and the kernel used, including the loopback TCP work done
// in softirqs, which no process's own figures count.
type cpuTimes struct{ busy, kernel, total float64 }

func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTimes{}
	}
	v := make([]float64, len(f))
	for i := 1; i < len(f); i++ {
		v[i], _ = strconv.ParseFloat(f[i], 64)
		v[i] /= 100 // USER_HZ
	}
	var t cpuTimes
	for i := 1; i < len(f) && i <= 8; i++ {
		t.total += v[i]
	}
	t.busy = t.total - v[4] - v[5]
	t.kernel = v[3] + v[6] + v[7]
	return t
}

// MachineLoad is how busy the whole machine was during a window, in cores.
type MachineLoad struct {
	Busy   float64 `json:"busy_cores"`   // all but idle and iowait
	Kernel float64 `json:"kernel_cores"` // system, irq and softirq: mostly loopback TCP here
}

func machineLoad(a, b cpuTimes, secs float64) MachineLoad {
	if secs <= 0 || b.total == 0 {
		return MachineLoad{}
	}
	return MachineLoad{Busy: (b.busy - a.busy) / secs, Kernel: (b.kernel - a.kernel) / secs}
}
