import Foundation
import KVMHost
import Synchronization
import Testing

@testable import KVMSys

/// hostd's OP_KICK against this machine's real KVM: a guest spinning in `jmp $` never exits
/// to userspace, as a payload waiting for a stopped vCPU does on a POWER host; the kick must
/// bring its KVM_RUN back, and a kick that finds nobody inside must end the next KVM_RUN.
@Suite struct RemoteKickTests {
  #if arch(x86_64)
    static let canRun =
      RemoteSyscallsTests.which("cc") != nil
      && FileManager.default.isReadableFile(atPath: "/dev/kvm")
  #else
    static let canRun = false
  #endif

  final class Outcome: Sendable {
    let errno = Mutex<Errno?>(nil)
  }

  /// Starts KVM_RUN on another thread; returns a semaphore signalled when it returns.
  static func runInBackground(_ vcpu: KVMVCPUFD, into result: Outcome) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    Thread {
      do throws(KVMError) {
        _ = try vcpu.run()
        result.errno.withLock { $0 = nil }
      } catch {
        result.errno.withLock { $0 = error.errno }
      }
      done.signal()
    }.start()
    return done
  }

  @Test(.enabled(if: canRun, "needs x86_64, a C compiler and /dev/kvm"))
  func kickEndsAKVMRunThatNeverExits() throws {
    let bin = try RemoteSyscallsTests.build(RemoteSyscallsTests.which("cc")!)
    defer { try? FileManager.default.removeItem(atPath: bin) }
    let (remote, p, _) = try RemoteSyscallsTests.connect([bin], arch: .host)
    defer { if p.isRunning { p.terminate() } }
    let kvm = try KVMSystemFD.open(syscalls: remote)
    let vm = try kvm.createVM(type: .default)
    // An x86 vCPU starts in real mode at 0xfffffff0: 64 KiB there holding `jmp $` (EB FE).
    let size = 64 << 10
    let rom = try remote.mmap(length: size, .sharedAnonymous).get()
    rom.storeBytes(of: 0xFEEB, toByteOffset: 0xfff0, as: UInt16.self)
    try vm.setUserMemoryRegion(
      KVMUserspaceMemoryRegion(
        slot: 0, guest_phys_addr: 0xffff_0000, memory_size: UInt64(size),
        userspace_addr: UInt64(UInt(bitPattern: rom))))
    let vcpu = try vm.createVCPU(id: 0)

    let result = Outcome()
    var done = Self.runInBackground(vcpu, into: result)
    #expect(done.wait(timeout: .now() + 0.5) == .timedOut, "the spinning guest exited by itself")
    remote.kick(vcpuFD: vcpu.fd)
    #expect(done.wait(timeout: .now() + 10) == .success, "the kick did not end KVM_RUN")
    #expect(result.errno.withLock { $0 } == .EINTR)

    // A kick with nobody inside is kept for the next KVM_RUN, which returns at once...
    remote.kick(vcpuFD: vcpu.fd)
    done = Self.runInBackground(vcpu, into: result)
    #expect(done.wait(timeout: .now() + 10) == .success, "a kept kick did not end the next KVM_RUN")
    #expect(result.errno.withLock { $0 } == .EINTR)
    // ...and only that one: the guest spins again until kicked again.
    done = Self.runInBackground(vcpu, into: result)
    #expect(done.wait(timeout: .now() + 0.5) == .timedOut, "a spent kick ended another KVM_RUN")
    remote.kick(vcpuFD: vcpu.fd)
    #expect(done.wait(timeout: .now() + 10) == .success)
  }
}
