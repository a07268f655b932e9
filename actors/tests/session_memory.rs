//! The in-memory session store's byte budget bounds the memory its records really take: a
//! counting allocator measures the heap that stateless one-line chats (the commonest record,
//! one new session per request) leave behind, against the bytes the store counts for them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use kubiya_actors::provider::ChatMessage;
use kubiya_actors::session::{MemorySessionStore, SessionKey, SessionRecord, SessionStore};
use kubiya_actors::store::{SessionId, TenantId};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn one_line_chat(id: usize) -> SessionRecord {
    let mut record = SessionRecord::new(SessionKey {
        tenant: TenantId::default_tenant(),
        user: "anonymous".into(),
        id: SessionId::parse(format!("{:032x}-{id:08}", 0xfeed_u128)).expect("an id"),
    });
    record.transcript.push(ChatMessage::user("hi"));
    record.transcript.push(ChatMessage::assistant_text("ok"));
    record
}

#[actix_rt::test]
async fn one_line_chats_take_no_more_memory_than_the_store_counts() {
    const RECORDS: usize = 20_000;
    let store = MemorySessionStore::new(Duration::from_secs(600), 1_000_000);
    let before = LIVE.load(Ordering::Relaxed);
    for id in 0..RECORDS {
        store.save(one_line_chat(id)).await.unwrap();
    }
    let taken = (LIVE.load(Ordering::Relaxed) - before) as usize;
    let counted = store.total_bytes();
    println!(
        "{RECORDS} one-line chats: {} bytes each on the heap, {} counted",
        taken / RECORDS,
        counted / RECORDS
    );
    assert!(
        taken <= counted,
        "the records take {taken} bytes of heap but the store counts {counted}"
    );
}
