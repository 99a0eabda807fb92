/* Generated from moe-ffi/Cargo.toml by moe-ffi/gen-header.sh; do not edit by hand. */
#ifndef MOE_VERSION_H
#define MOE_VERSION_H
/** The version of this header, from Cargo.toml; moe_version() gives the linked library's. */
#define MOE_VERSION_MAJOR 0
#define MOE_VERSION_MINOR 1
#define MOE_VERSION_PATCH 0
#define MOE_VERSION_STRING "0.1.0"
#endif /* MOE_VERSION_H */
