"""Tencent Chat REST data centres: the primary and backup domain of each region.

The domain must be the data centre where the SDKAppID was created (a mismatch
shows up as Desk error 70016 or 70020). The backup `*.my-imcloud.com` domains are
Tencent's documented fallback when the primary one cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    key: str
    label: str
    primary: str
    backup: str

    @property
    def base_urls(self) -> tuple[str, str]:
        return (f"https://{self.primary}", f"https://{self.backup}")


REGIONS: dict[str, Region] = {
    r.key: r
    for r in (
        Region("china", "Chinese mainland", "console.tim.qq.com", "adminapi.my-imcloud.com"),
        Region("singapore", "Singapore", "adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
        Region("seoul", "Seoul", "adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
        Region("tokyo", "Tokyo", "adminapijpn.im.qcloud.com", "adminapijpn.my-imcloud.com"),
        Region("frankfurt", "Frankfurt", "adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
        Region("mumbai", "Mumbai", "adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com"),
        Region(
            "silicon-valley", "Silicon Valley", "adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"
        ),
        Region("jakarta", "Jakarta", "adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
    )
}
