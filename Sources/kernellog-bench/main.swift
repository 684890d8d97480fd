import KernelLog

print(CrashDetector().headerStrings.count)
