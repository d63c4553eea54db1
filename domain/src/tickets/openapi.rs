//! OpenAPI schemas written by hand for the two ticket types whose unnamed fields the schema derive
//! cannot describe: a zone is an alias of `u8` (0..=255), a fare one of `u32`. Everything else derives
//! its schema (feature `openapi`, for enrold's document).

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::{Coverage, RideValue, StationId};

fn integer(max: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(max))
}

/// `{"name": value}` and nothing else: serde's externally tagged variant.
fn tagged(name: &str, value: impl Into<RefOr<Schema>>, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property(name, value)
        .required(name)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

impl PartialSchema for Coverage {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some("Where a pass is valid."))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["network"])),
            )
            // Sets: a repeated station or zone counts once (accepted, not refused).
            .item(tagged(
                "stations",
                ArrayBuilder::new().items(StationId::schema()),
                "these stations",
            ))
            .item(tagged(
                "zones",
                ArrayBuilder::new().items(integer(255)),
                "the stations of these fare zones",
            ))
            .into()
    }
}

impl ToSchema for Coverage {
    fn name() -> Cow<'static, str> {
        "Coverage".into()
    }
}

impl PartialSchema for RideValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some("What a single ride was bought for."))
            .item(tagged(
                "fare",
                integer(u64::from(u32::MAX)),
                "a fare paid, in the smallest currency unit: any trip whose fare is at most this",
            ))
            .item(tagged(
                "zones",
                integer(255),
                "a number of zones: n covers trips of zone distance 0..n (1 = within one zone)",
            ))
            .into()
    }
}

impl ToSchema for RideValue {
    fn name() -> Cow<'static, str> {
        "RideValue".into()
    }
}
