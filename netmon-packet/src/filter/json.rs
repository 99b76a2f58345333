//! The seed's nested JSON filters: `{"Layer":{"Field":value,...},...}`; every listed layer must
//! be present and every listed field equal. An array of such objects matches if any does.

use serde_json::Value as Json;

use super::fields::{LAYERS, META_JSON, layer_fields};
use super::{FilterError, Node, Op, Target, literal};

pub(super) fn parse(text: &str) -> Result<Node, FilterError> {
    let json: Json = serde_json::from_str(text)
        .map_err(|e| FilterError::msg(format!("invalid JSON filter: {e}")))?;
    match json {
        Json::Object(_) => one(&json),
        Json::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, f)| {
                one(f).map_err(|e| {
                    FilterError::msg(format!(
                        "filter {} of {}: {}",
                        i + 1,
                        items.len(),
                        e.message
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Node::Or),
        Json::Array(_) => Err(FilterError::msg("empty JSON filter list")),
        _ => Err(FilterError::msg(
            "a JSON filter is an object {\"Layer\":{\"Field\":value}} or an array of them",
        )),
    }
}

fn one(f: &Json) -> Result<Node, FilterError> {
    let Json::Object(layers) = f else {
        return Err(FilterError::msg(
            "expected an object {\"Layer\":{\"Field\":value}}",
        ));
    };
    let mut all = Vec::new();
    for (layer, fields) in layers {
        let Json::Object(fields) = fields else {
            return Err(FilterError::msg(format!(
                "{layer}: expected an object of field values"
            )));
        };
        if layer.eq_ignore_ascii_case("AF_Packet") {
            for (name, value) in fields {
                let Some((_, m)) = META_JSON.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
                else {
                    let valid: Vec<&str> = META_JSON.iter().map(|(n, _)| *n).collect();
                    return Err(FilterError::msg(format!(
                        "unknown field 'AF_Packet.{name}'; valid fields of AF_Packet: {}",
                        valid.join(", ")
                    )));
                };
                let value = match value {
                    Json::String(t) => Json::String(super::normalize(&Target::Meta(*m), t.clone())),
                    v => v.clone(),
                };
                let lit = lit(m.kind(), &value)
                    .map_err(|e| FilterError::msg(format!("AF_Packet.{name}: {e}")))?;
                all.push(Node::Cmp(Target::Meta(*m), Op::Eq, lit));
            }
            continue;
        }
        let Some((canonical, known)) = layer_fields(layer) else {
            let mut valid: Vec<&str> = vec!["AF_Packet"];
            valid.extend(LAYERS.iter().map(|(n, _)| *n));
            return Err(FilterError::msg(format!(
                "unknown layer '{layer}'; valid layers: {}",
                valid.join(", ")
            )));
        };
        all.push(Node::Has(vec![canonical]));
        for (name, value) in fields {
            let Some((field, kind)) = known.iter().find(|(f, _)| f.eq_ignore_ascii_case(name))
            else {
                let valid: Vec<&str> = known.iter().map(|(f, _)| *f).collect();
                return Err(FilterError::msg(format!(
                    "unknown field '{canonical}.{name}'; valid fields of {canonical}: {}",
                    valid.join(", ")
                )));
            };
            let lit = lit(*kind, value)
                .map_err(|e| FilterError::msg(format!("{canonical}.{field}: {e}")))?;
            all.push(Node::Cmp(
                Target::Fields(vec![(canonical, field)]),
                Op::Eq,
                lit,
            ));
        }
    }
    Ok(if all.is_empty() {
        Node::True
    } else {
        Node::And(all)
    })
}

fn lit(kind: super::fields::Kind, v: &Json) -> Result<crate::value::Value, String> {
    match v {
        Json::String(s) => literal(kind, s),
        Json::Number(n) => literal(kind, &n.to_string()),
        Json::Bool(b) => literal(kind, if *b { "true" } else { "false" }),
        other => Err(format!("expected a string, number or boolean, not {other}")),
    }
}
