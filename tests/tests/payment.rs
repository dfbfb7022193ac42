//! Payment through the sandbox provider: a declined card books nothing; a hold that expires
//! between the charge and the confirm ends with a refund recorded and the seat free.

use std::time::Duration;

use holdfast_tests::{confirm_body, event_body, hold_body, seat_status, ProcessCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_and_late_payments() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("pay", 1, 10, 10))
        .await?;

    let hold = cluster
        .post(
            1,
            "/booking/hold",
            hold_body("pay", "dee", &["A-1-1"], 600),
            None,
        )
        .await?;
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let declined = cluster
        .post(
            2,
            "/booking/confirm",
            confirm_body(&hold_id, "tok_declined"),
            Some("d1"),
        )
        .await?;
    assert_eq!(declined.status, 402, "{:?}", declined.body);
    assert_eq!(declined.code(), "PAYMENT_DECLINED");
    let view = cluster
        .get(0, &format!("/holds/{hold_id}?consistency=linearizable"))
        .await?;
    assert_eq!(view.body["status"], "HELD");
    let page = cluster
        .get(
            0,
            "/availability?event_id=pay&view=summary&consistency=linearizable",
        )
        .await?;
    assert_eq!(page.body["summary"]["seats_booked"], 0);

    // The sandbox token tok_visa_delay_<ms> succeeds after a delay: long enough for the
    // 1-second hold to pass its expiry between the charge and the confirm.
    let short = cluster
        .post(
            1,
            "/booking/hold",
            hold_body("pay", "late", &["A-1-2"], 1),
            None,
        )
        .await?;
    let short_id = short.body["hold_id"].as_str().unwrap().to_string();
    let late = cluster
        .post(
            0,
            "/booking/confirm",
            confirm_body(&short_id, "tok_visa_delay_2500"),
            Some("l1"),
        )
        .await?;
    assert_eq!(late.status, 410, "{:?}", late.body);
    assert_eq!(late.code(), "HOLD_EXPIRED");
    let refund = &late.body["error"]["details"]["refund"];
    assert_eq!(refund["status"], "PENDING", "{:?}", late.body);
    assert_eq!(refund["amount"], 4500);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page = cluster
        .get(2, "/availability?event_id=pay&consistency=linearizable")
        .await?;
    let status = seat_status(&page.body, "A-1-2").expect("the page lists the seat");
    assert_eq!(status, "AVAILABLE", "{:?}", page.body);
    Ok(())
}
