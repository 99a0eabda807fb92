//! C ABI for moe (see include/moe.h).
