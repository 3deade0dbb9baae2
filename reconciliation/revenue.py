"""Revenue for a day or any range: per fee item, per kind, per channel, per clerk, and what
goes to the State Treasury.

Law on Fees and Charges 97/2015/QH13: a charge (lệ phí) goes in full to the state budget; a fee
(phí) may be partly retained at the item's retention rate, the rest remitted. The retained part
is computed per line and rounded down to the đồng (the agency never keeps a fraction that
belongs to the budget), in SQL, grouped — never a loop over payments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from payments.models import OrderLine, PaymentOrder

__all__ = ["RevenueReport", "RevenueRow", "revenue_for"]


@dataclass(frozen=True)
class RevenueRow:
    key: str
    label: str
    kind: str
    count: int
    amount: int
    retained: int
    to_budget: int


@dataclass
class RevenueReport:
    start: datetime
    end: datetime
    by_fee: list[RevenueRow] = field(default_factory=list)
    by_kind: list[RevenueRow] = field(default_factory=list)
    by_channel: list[RevenueRow] = field(default_factory=list)
    by_clerk: list[RevenueRow] = field(default_factory=list)

    def treasury_totals(self) -> dict[str, int]:
        total = sum(r.amount for r in self.by_kind)
        retained = sum(r.retained for r in self.by_kind)
        le_phi = sum(r.amount for r in self.by_kind if r.kind == "le_phi")
        phi = sum(r.amount for r in self.by_kind if r.kind == "phi")
        return {
            "collected": total,
            "phi": phi,
            "le_phi": le_phi,
            "phi_retained": retained,
            "phi_to_remit": phi - retained,
            "to_state_treasury": total - retained,
        }

    def as_json(self) -> dict[str, Any]:
        def rows(items: list[RevenueRow]) -> list[dict[str, Any]]:
            return [r.__dict__ for r in items]

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "by_fee": rows(self.by_fee),
            "by_kind": rows(self.by_kind),
            "by_channel": rows(self.by_channel),
            "by_clerk": rows(self.by_clerk),
            "treasury": self.treasury_totals(),
        }


def revenue_for(session: Session, agency_id: str, start: datetime, end: datetime) -> RevenueReport:
    retained = func.sum(
        case(
            (OrderLine.kind == "phi", OrderLine.amount * OrderLine.retention_percent / 100), else_=0
        )
    )
    base = (
        select()
        .select_from(OrderLine)
        .join(PaymentOrder, PaymentOrder.id == OrderLine.order_id)
        .where(
            PaymentOrder.agency_id == agency_id,
            PaymentOrder.status == "succeeded",
            PaymentOrder.paid_at >= start,
            PaymentOrder.paid_at < end,
        )
    )
    measures = (
        func.count(),
        func.coalesce(func.sum(OrderLine.amount), 0),
        func.coalesce(retained, 0),
    )

    def grouped(*keys: Any) -> list[Any]:
        return list(
            session.execute(base.add_columns(*keys, *measures).group_by(*keys).order_by(*keys))
        )

    report = RevenueReport(start, end)
    for code, name, kind, n, amount, kept in grouped(
        OrderLine.fee_code, OrderLine.fee_name, OrderLine.kind
    ):
        report.by_fee.append(
            RevenueRow(code, name, kind, int(n), int(amount), int(kept), int(amount) - int(kept))
        )
    for kind, n, amount, kept in grouped(OrderLine.kind):
        label = "Phí" if kind == "phi" else "Lệ phí"
        report.by_kind.append(
            RevenueRow(kind, label, kind, int(n), int(amount), int(kept), int(amount) - int(kept))
        )
    for method, n, amount, kept in grouped(PaymentOrder.payment_method):
        report.by_channel.append(
            RevenueRow(
                str(method),
                _CHANNELS.get(str(method), str(method)),
                "",
                int(n),
                int(amount),
                int(kept),
                int(amount) - int(kept),
            )
        )
    clerk = func.coalesce(PaymentOrder.collected_by, "(trực tuyến / online)")
    for who, n, amount, kept in grouped(clerk):
        report.by_clerk.append(
            RevenueRow(
                str(who), str(who), "", int(n), int(amount), int(kept), int(amount) - int(kept)
            )
        )
    return report


_CHANNELS = {
    "transfer": "Chuyển khoản (transfer)",
    "card": "Thẻ (card)",
    "cash": "Tiền mặt (cash)",
    "exempt": "Miễn (exempt)",
}
