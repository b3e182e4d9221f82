-- One row per attribute of a traffic type (contract §3.4). `dataType` arrives upper case,
-- lower case or null depending on the API's form: it is upper case here.
select
    workspace_id,
    traffic_type_id,
    id as attribute_id,
    display_name,
    description as attribute_description,
    upper(data_type) as data_type,
    coalesce(is_searchable, false) as is_searchable,
    organization_id
from {{ source('split', 'attributes') }}
