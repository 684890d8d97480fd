/// Tests of eight bytes at once (SWAR): each gives a mask with 0x80 in every byte of the word
/// that passes and 0 in the others. The sums are made on seven-bit bytes, so no carry crosses
/// from one byte into the next and every byte's answer is exact.

/// 0x80 in each byte of `x` that is an ASCII digit.
@inline(__always) func digitBytes(_ x: UInt64) -> UInt64 {
  let low7 = x & 0x7f7f_7f7f_7f7f_7f7f
  let atLeast0 = low7 &+ 0x5050_5050_5050_5050
  let above9 = low7 &+ 0x4646_4646_4646_4646
  return atLeast0 & ~above9 & ~x & 0x8080_8080_8080_8080
}

/// 0x80 in each byte of `x` equal to `byte`.
@inline(__always) func equalBytes(_ x: UInt64, _ byte: UInt8) -> UInt64 {
  let t = x ^ (0x0101_0101_0101_0101 &* UInt64(byte))
  return ~(((t & 0x7f7f_7f7f_7f7f_7f7f) &+ 0x7f7f_7f7f_7f7f_7f7f) | t) & 0x8080_8080_8080_8080
}
