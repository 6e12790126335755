import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Bid(_message.Message):
    __slots__ = ("bid_id", "auction_id", "name", "price", "bid_ts", "partition", "offset")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    BID_TS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    auction_id: str
    name: str
    price: int
    bid_ts: _timestamp_pb2.Timestamp
    partition: int
    offset: int
    def __init__(self, bid_id: _Optional[str] = ..., auction_id: _Optional[str] = ..., name: _Optional[str] = ..., price: _Optional[int] = ..., bid_ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class AuctionState(_message.Message):
    __slots__ = ("auction_id", "highest_bid", "minimum_next_bid", "bid_count")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    HIGHEST_BID_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_NEXT_BID_FIELD_NUMBER: _ClassVar[int]
    BID_COUNT_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    highest_bid: Bid
    minimum_next_bid: int
    bid_count: int
    def __init__(self, auction_id: _Optional[str] = ..., highest_bid: _Optional[_Union[Bid, _Mapping]] = ..., minimum_next_bid: _Optional[int] = ..., bid_count: _Optional[int] = ...) -> None: ...

class PlaceBidRequest(_message.Message):
    __slots__ = ("auction_id", "name", "price", "request_id")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    name: str
    price: int
    request_id: str
    def __init__(self, auction_id: _Optional[str] = ..., name: _Optional[str] = ..., price: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class PlaceBidResponse(_message.Message):
    __slots__ = ("bid", "auction", "replayed")
    BID_FIELD_NUMBER: _ClassVar[int]
    AUCTION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    bid: Bid
    auction: AuctionState
    replayed: bool
    def __init__(self, bid: _Optional[_Union[Bid, _Mapping]] = ..., auction: _Optional[_Union[AuctionState, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class HighestBidRequest(_message.Message):
    __slots__ = ("auction_id",)
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    def __init__(self, auction_id: _Optional[str] = ...) -> None: ...

class HighestBidResponse(_message.Message):
    __slots__ = ("auction",)
    AUCTION_FIELD_NUMBER: _ClassVar[int]
    auction: AuctionState
    def __init__(self, auction: _Optional[_Union[AuctionState, _Mapping]] = ...) -> None: ...

class WatchAuctionRequest(_message.Message):
    __slots__ = ("auction_id",)
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    def __init__(self, auction_id: _Optional[str] = ...) -> None: ...

class WatchAuctionResponse(_message.Message):
    __slots__ = ("auction",)
    AUCTION_FIELD_NUMBER: _ClassVar[int]
    auction: AuctionState
    def __init__(self, auction: _Optional[_Union[AuctionState, _Mapping]] = ...) -> None: ...

class ListRecentBidsRequest(_message.Message):
    __slots__ = ("auction_id", "limit")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    limit: int
    def __init__(self, auction_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRecentBidsResponse(_message.Message):
    __slots__ = ("bids",)
    BIDS_FIELD_NUMBER: _ClassVar[int]
    bids: _containers.RepeatedCompositeFieldContainer[Bid]
    def __init__(self, bids: _Optional[_Iterable[_Union[Bid, _Mapping]]] = ...) -> None: ...

class ListAuctionsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListAuctionsResponse(_message.Message):
    __slots__ = ("auctions",)
    AUCTIONS_FIELD_NUMBER: _ClassVar[int]
    auctions: _containers.RepeatedCompositeFieldContainer[AuctionState]
    def __init__(self, auctions: _Optional[_Iterable[_Union[AuctionState, _Mapping]]] = ...) -> None: ...
