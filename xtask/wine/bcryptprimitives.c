/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the test suite under Wine 8.0.
 *
 * Rust's standard library (1.78 and later) gets random bytes from `ProcessPrng` in
 * bcryptprimitives.dll, which Wine 8.0 does not ship, so every Rust program fails to start
 * there (exit code 53). This DLL exports `ProcessPrng` and fills the buffer with
 * `RtlGenRandom` (advapi32's `SystemFunction036`), which Wine has. `cargo xtask cross` builds
 * it with mingw and copies it into the Wine prefix's system32. Real Windows is not affected.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
