//! Connection ids as C sees them: a `uint64_t`, 0 meaning "none".

use crate::panic::fail;
use crate::result::tether_result;
use tether_core::registry::ConnId;
use tether_core::HandleError;

/// Converts a C connection id, rejecting 0.
pub(crate) fn conn_id(conn: u64) -> Result<ConnId, tether_result> {
    if conn == 0 {
        return Err(fail(
            tether_result::InvalidHandle,
            "connection id 0 means \"no connection\"",
        ));
    }
    Ok(ConnId::from_u64(conn))
}

/// Records the detail of a failed id lookup and returns its code.
pub(crate) fn handle_error(e: HandleError, conn: u64) -> tether_result {
    fail(tether_result::from(e), format!("connection {conn:#x}: {e}"))
}
