import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuctionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUCTION_STATUS_UNSPECIFIED: _ClassVar[AuctionStatus]
    AUCTION_STATUS_SCHEDULED: _ClassVar[AuctionStatus]
    AUCTION_STATUS_OPEN: _ClassVar[AuctionStatus]
    AUCTION_STATUS_CLOSED: _ClassVar[AuctionStatus]
    AUCTION_STATUS_CANCELLED: _ClassVar[AuctionStatus]
AUCTION_STATUS_UNSPECIFIED: AuctionStatus
AUCTION_STATUS_SCHEDULED: AuctionStatus
AUCTION_STATUS_OPEN: AuctionStatus
AUCTION_STATUS_CLOSED: AuctionStatus
AUCTION_STATUS_CANCELLED: AuctionStatus

class IncrementBand(_message.Message):
    __slots__ = ("from_price", "increment")
    FROM_PRICE_FIELD_NUMBER: _ClassVar[int]
    INCREMENT_FIELD_NUMBER: _ClassVar[int]
    from_price: int
    increment: int
    def __init__(self, from_price: _Optional[int] = ..., increment: _Optional[int] = ...) -> None: ...

class AuctionDefinition(_message.Message):
    __slots__ = ("title", "description", "seller", "starting_price", "has_reserve", "increments", "start_time", "scheduled_end_time", "soft_close_window", "extension")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SELLER_FIELD_NUMBER: _ClassVar[int]
    STARTING_PRICE_FIELD_NUMBER: _ClassVar[int]
    HAS_RESERVE_FIELD_NUMBER: _ClassVar[int]
    INCREMENTS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_END_TIME_FIELD_NUMBER: _ClassVar[int]
    SOFT_CLOSE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_FIELD_NUMBER: _ClassVar[int]
    title: str
    description: str
    seller: str
    starting_price: int
    has_reserve: bool
    increments: _containers.RepeatedCompositeFieldContainer[IncrementBand]
    start_time: _timestamp_pb2.Timestamp
    scheduled_end_time: _timestamp_pb2.Timestamp
    soft_close_window: _duration_pb2.Duration
    extension: _duration_pb2.Duration
    def __init__(self, title: _Optional[str] = ..., description: _Optional[str] = ..., seller: _Optional[str] = ..., starting_price: _Optional[int] = ..., has_reserve: _Optional[bool] = ..., increments: _Optional[_Iterable[_Union[IncrementBand, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scheduled_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., soft_close_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., extension: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AuctionResult(_message.Message):
    __slots__ = ("sold", "winning_bid", "closed_at")
    SOLD_FIELD_NUMBER: _ClassVar[int]
    WINNING_BID_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    sold: bool
    winning_bid: Bid
    closed_at: _timestamp_pb2.Timestamp
    def __init__(self, sold: _Optional[bool] = ..., winning_bid: _Optional[_Union[Bid, _Mapping]] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("auction_id", "highest_bid", "minimum_next_bid", "bid_count", "status", "definition", "end_time", "reserve_met", "extensions", "result")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    HIGHEST_BID_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_NEXT_BID_FIELD_NUMBER: _ClassVar[int]
    BID_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    RESERVE_MET_FIELD_NUMBER: _ClassVar[int]
    EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    highest_bid: Bid
    minimum_next_bid: int
    bid_count: int
    status: AuctionStatus
    definition: AuctionDefinition
    end_time: _timestamp_pb2.Timestamp
    reserve_met: bool
    extensions: int
    result: AuctionResult
    def __init__(self, auction_id: _Optional[str] = ..., highest_bid: _Optional[_Union[Bid, _Mapping]] = ..., minimum_next_bid: _Optional[int] = ..., bid_count: _Optional[int] = ..., status: _Optional[_Union[AuctionStatus, str]] = ..., definition: _Optional[_Union[AuctionDefinition, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reserve_met: _Optional[bool] = ..., extensions: _Optional[int] = ..., result: _Optional[_Union[AuctionResult, _Mapping]] = ...) -> None: ...

class PlaceBidRequest(_message.Message):
    __slots__ = ("auction_id", "name", "price", "request_id", "max_price")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    name: str
    price: int
    request_id: str
    max_price: int
    def __init__(self, auction_id: _Optional[str] = ..., name: _Optional[str] = ..., price: _Optional[int] = ..., request_id: _Optional[str] = ..., max_price: _Optional[int] = ...) -> None: ...

class PlaceBidResponse(_message.Message):
    __slots__ = ("bid", "auction", "replayed", "outbid")
    BID_FIELD_NUMBER: _ClassVar[int]
    AUCTION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    OUTBID_FIELD_NUMBER: _ClassVar[int]
    bid: Bid
    auction: AuctionState
    replayed: bool
    outbid: bool
    def __init__(self, bid: _Optional[_Union[Bid, _Mapping]] = ..., auction: _Optional[_Union[AuctionState, _Mapping]] = ..., replayed: _Optional[bool] = ..., outbid: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("limit", "status")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    status: AuctionStatus
    def __init__(self, limit: _Optional[int] = ..., status: _Optional[_Union[AuctionStatus, str]] = ...) -> None: ...

class ListAuctionsResponse(_message.Message):
    __slots__ = ("auctions",)
    AUCTIONS_FIELD_NUMBER: _ClassVar[int]
    auctions: _containers.RepeatedCompositeFieldContainer[AuctionState]
    def __init__(self, auctions: _Optional[_Iterable[_Union[AuctionState, _Mapping]]] = ...) -> None: ...

class CreateAuctionRequest(_message.Message):
    __slots__ = ("auction_id", "title", "description", "seller", "starting_price", "reserve_price", "increments", "fixed_increment", "start_time", "end_time", "soft_close_window", "extension", "creation_token")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SELLER_FIELD_NUMBER: _ClassVar[int]
    STARTING_PRICE_FIELD_NUMBER: _ClassVar[int]
    RESERVE_PRICE_FIELD_NUMBER: _ClassVar[int]
    INCREMENTS_FIELD_NUMBER: _ClassVar[int]
    FIXED_INCREMENT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SOFT_CLOSE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_FIELD_NUMBER: _ClassVar[int]
    CREATION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    title: str
    description: str
    seller: str
    starting_price: int
    reserve_price: int
    increments: _containers.RepeatedCompositeFieldContainer[IncrementBand]
    fixed_increment: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    soft_close_window: _duration_pb2.Duration
    extension: _duration_pb2.Duration
    creation_token: str
    def __init__(self, auction_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., seller: _Optional[str] = ..., starting_price: _Optional[int] = ..., reserve_price: _Optional[int] = ..., increments: _Optional[_Iterable[_Union[IncrementBand, _Mapping]]] = ..., fixed_increment: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., soft_close_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., extension: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., creation_token: _Optional[str] = ...) -> None: ...

class CreateAuctionResponse(_message.Message):
    __slots__ = ("auction", "seller_key")
    AUCTION_FIELD_NUMBER: _ClassVar[int]
    SELLER_KEY_FIELD_NUMBER: _ClassVar[int]
    auction: AuctionState
    seller_key: str
    def __init__(self, auction: _Optional[_Union[AuctionState, _Mapping]] = ..., seller_key: _Optional[str] = ...) -> None: ...

class GetAuctionRequest(_message.Message):
    __slots__ = ("auction_id",)
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    def __init__(self, auction_id: _Optional[str] = ...) -> None: ...

class GetAuctionResponse(_message.Message):
    __slots__ = ("auction",)
    AUCTION_FIELD_NUMBER: _ClassVar[int]
    auction: AuctionState
    def __init__(self, auction: _Optional[_Union[AuctionState, _Mapping]] = ...) -> None: ...

class CancelAuctionRequest(_message.Message):
    __slots__ = ("auction_id", "seller_key")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_KEY_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    seller_key: str
    def __init__(self, auction_id: _Optional[str] = ..., seller_key: _Optional[str] = ...) -> None: ...

class CancelAuctionResponse(_message.Message):
    __slots__ = ("auction",)
    AUCTION_FIELD_NUMBER: _ClassVar[int]
    auction: AuctionState
    def __init__(self, auction: _Optional[_Union[AuctionState, _Mapping]] = ...) -> None: ...
