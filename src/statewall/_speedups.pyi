"""Types of the optional C accelerator (src/statewall/_speedups.c). Each function mirrors the
pure-Python function of the same name; see the modules that install them."""

from typing import Any, Callable, Mapping, Sequence

from statewall.packet.packet import Packet

Buffer = bytes | bytearray | memoryview

def l4_checksum_ok(buf: Buffer, l4off: int, src: bytes, dst: bytes, proto: int,
                   length: int | None = None) -> bool: ...
def decode_ip(buf: bytes, loopback: bool | None = None) -> Packet: ...
def decode_ipv4(buf: bytes) -> Packet: ...
def decode_ipv6(buf: bytes, loopback: bool | None = None) -> Packet: ...
def bind_packet(cls: type[Packet], template: Packet) -> None: ...
def set_fallbacks(*, l4_checksum_ok: Callable[..., bool] = ...,
                  decode_ip: Callable[..., Packet] = ..., decode_ipv4: Callable[..., Packet] = ...,
                  decode_ipv6: Callable[..., Packet] = ...) -> None: ...
def tcp_methods(cls: type, error_py: Callable[..., int], packet_py: Callable[..., int],
                new_py: Callable[..., bool], l4_factory: Callable[[], Any], conn_cls: type,
                settings_cls: type, index: bytes, flat: bytes, valid: bytes,
                timeout_names: Sequence[str], syn_sent2_timeout: int,
                layout: Mapping[str, int]) -> dict[str, Any]: ...
def tracker_methods(cls: type, conntrack_in_py: Callable[..., int], table_cls: type,
                    conn_cls: type) -> dict[str, Any]: ...
def firewall_methods(cls: type, process_py: Callable[..., Any], dec_cls: type, template: Any,
                     defrag_cls: type, family_cls: type, expect_cls: type, host_cls: type,
                     engine_cls: type, fe_cls: type, accept: str, drop: str, ctx_cls: type,
                     ctx_template: Any, table_cls: type,
                     hook_numbers: dict[str, int]) -> dict[str, Any]: ...
def chains_bind(engine_cls: type, table_cls: type, ctx_cls: type, pkt_cls: type,
                conn_cls: type, result_cls: type, walk_py: Callable[..., Any],
                run_py: Callable[..., Any], verdicts: tuple[Any, ...], hotdrop: type,
                trace_cls: type, ctinfo_bits: tuple[int, ...],
                constants: dict[str, int]) -> dict[str, Any]: ...
