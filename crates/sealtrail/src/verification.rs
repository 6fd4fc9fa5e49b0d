//! Verification of a tenant's log on the store: shared by `sealtrail verify`, `GET /v1/verify`
//! and the background verifier.
