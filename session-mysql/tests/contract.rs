//! The storage contract, clause by clause, against a real MySQL / MariaDB server.

mod common;

use std::sync::Arc;

use session_core::SessionInterface;
use session_sql_common::contract;

macro_rules! contract_tests {
    ($($name:ident => |$s:ident, $c:ident| $body:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some((store, clock)) = common::store(stringify!($name)).await else { return };
            let cleanup = store.clone();
            {
                let $s: Arc<dyn SessionInterface> = Arc::new(store);
                let $c = &clock;
                $body.await;
            }
            cleanup.drop_table().await.unwrap();
        }
    )*};
}

contract_tests! {
    create_and_collision => |s, c| contract::create_and_collision(&*s, c);
    create_over_expired => |s, c| contract::create_over_expired(&*s, c);
    update_cas => |s, c| contract::update_cas(&*s, c);
    expire => |s, c| contract::expire(&*s, c);
    touch => |s, c| contract::touch(&*s, c);
    delete_expired_in_batches => |s, c| contract::delete_expired(s.clone(), c, 2_500);
    payloads_up_to_8_mib => |s, c| contract::payload_sizes(&*s, c);
    concurrent_creates_one_wins => |s, c| contract::concurrent_creates(s.clone(), c, 32);
    concurrent_updates_one_wins => |s, c| contract::concurrent_updates(s.clone(), c, 32);
}
