-- One row per suggested value of an attribute, in the API's order (contract §3.4: datetime
-- values are epoch-ms strings, set values comma-separated strings).
with suggested_values as (
    select _dlt_parent_id, _dlt_list_idx, value
    from {{ optional_child_relation(source('split', 'attributes'), 'suggested_values',
        {'_dlt_parent_id': dbt.type_string(), '_dlt_list_idx': dbt.type_bigint(), 'value': dbt.type_string()}) }} as v
)

select
    attributes.workspace_id,
    attributes.traffic_type_id,
    attributes.id as attribute_id,
    suggested_values._dlt_list_idx as value_index,
    suggested_values.value as suggested_value
from suggested_values
inner join {{ source('split', 'attributes') }} as attributes
    on suggested_values._dlt_parent_id = attributes._dlt_id
