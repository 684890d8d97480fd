import KVMHost

/// The one place a handle turns an ioctl into a syscall: the request number for the layout of
/// the kernel the syscalls reach (this host's, or a remote POWER host's), the argument sized from the same Swift struct as that number, EINTR retried only
/// when asked, and a failure named after the ioctl with the errno of that call.
struct IoctlCall {
  let fd: Int32
  let syscalls: any Syscalls

  /// An `_IO` request, or one whose argument is an integer.
  func callAsFunction(_ ioctl: KVMIoctl, value: UInt = 0, retryOnInterrupt: Bool) -> Result<
    Int32, KVMError
  > {
    precondition(ioctl.size == 0, "\(ioctl.name) takes a struct")
    let request = ioctl.number(for: syscalls.arch)
    return syscalls.retrying(retryOnInterrupt) { syscalls.ioctl(fd, request, value: value) }
      .mapError { KVMError(ioctl.name, $0) }
  }

  /// A request whose argument is a pointer to `arg`, which the kernel may read and write.
  func callAsFunction<T>(_ ioctl: KVMIoctl, _ arg: inout T, retryOnInterrupt: Bool) -> Result<
    Int32, KVMError
  > {
    precondition(MemoryLayout<T>.size == ioctl.size, "\(ioctl.name): argument size mismatch")
    let request = ioctl.number(for: syscalls.arch)
    return withUnsafeMutableBytes(of: &arg) { buffer in
      syscalls.retrying(retryOnInterrupt) { syscalls.ioctl(fd, request, buffer) }
    }.mapError { KVMError(ioctl.name, $0) }
  }
}
