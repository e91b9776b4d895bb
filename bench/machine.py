"""The machine a benchmark ran on, as every benchmark prints it: CPU model and cores, GPUs."""
import os
import platform
import subprocess


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (else what platform knows)."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def gpu_names():
    """nvidia-smi -L's lines ("GPU 0: NVIDIA H100 ..."); [] without nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.PIPE, text=True).stdout
    except OSError:
        return []
    return [line for line in out.splitlines() if line.startswith("GPU")]


def gpu_model(device):
    """Name and driver of GPU `device`."""
    out = subprocess.run(["nvidia-smi", "-i", str(device), "--query-gpu=name,driver_version",
                          "--format=csv,noheader"], stdout=subprocess.PIPE, text=True)
    return out.stdout.strip() or "GPU %d" % device


def describe(gpu=False):
    """One line: CPU, cores (usable), architecture, Python; the GPUs when `gpu`."""
    text = "%s, %d cores (%d usable), %s, Python %s" % (
        cpu_model(), os.cpu_count(), len(os.sched_getaffinity(0)), platform.machine(),
        platform.python_version())
    if gpu:
        text += "; GPUs: " + "; ".join(gpu_names())
    return text
