{#- JSON access, behind adapter.dispatch: dlt stores nested documents as DuckDB JSON,
    Postgres jsonb, BigQuery JSON and Snowflake VARIANT. Models call only these. -#}

{#- The text of a key of a JSON object (null when absent). -#}
{% macro json_text(expression, key) -%}
  {{ return(adapter.dispatch('json_text', 'analytics_assets')(expression, key)) }}
{%- endmacro %}
{% macro default__json_text(expression, key) -%}
  json_extract_string({{ expression }}, '$.{{ key }}')
{%- endmacro %}
{% macro postgres__json_text(expression, key) -%}
  ({{ expression }} ->> '{{ key }}')
{%- endmacro %}
{% macro bigquery__json_text(expression, key) -%}
  json_value({{ expression }}, '$.{{ key }}')
{%- endmacro %}
{% macro snowflake__json_text(expression, key) -%}
  {{ expression }}:{{ key }}::string
{%- endmacro %}

{#- A key of a JSON object, still JSON (an object, array or scalar). -#}
{% macro json_value(expression, key) -%}
  {{ return(adapter.dispatch('json_value', 'analytics_assets')(expression, key)) }}
{%- endmacro %}
{% macro default__json_value(expression, key) -%}
  json_extract({{ expression }}, '$.{{ key }}')
{%- endmacro %}
{% macro postgres__json_value(expression, key) -%}
  ({{ expression }} -> '{{ key }}')
{%- endmacro %}
{% macro bigquery__json_value(expression, key) -%}
  json_query({{ expression }}, '$.{{ key }}')
{%- endmacro %}
{% macro snowflake__json_value(expression, key) -%}
  {{ expression }}:{{ key }}
{%- endmacro %}

{#- Element `index` (0-based) of a JSON array, as JSON. -#}
{% macro json_element(expression, index) -%}
  {{ return(adapter.dispatch('json_element', 'analytics_assets')(expression, index)) }}
{%- endmacro %}
{% macro default__json_element(expression, index) -%}
  ({{ expression }} -> cast({{ index }} as integer))
{%- endmacro %}
{% macro bigquery__json_element(expression, index) -%}
  json_query({{ expression }}, concat('$[', cast({{ index }} as string), ']'))
{%- endmacro %}
{% macro snowflake__json_element(expression, index) -%}
  get({{ expression }}, {{ index }})
{%- endmacro %}

{#- The length of a JSON array; 0 for null, a missing key or a JSON null. -#}
{% macro json_array_length(expression) -%}
  {{ return(adapter.dispatch('json_array_length', 'analytics_assets')(expression)) }}
{%- endmacro %}
{% macro default__json_array_length(expression) -%}
  coalesce(cast(json_array_length({{ expression }}) as bigint), 0)
{%- endmacro %}
{% macro postgres__json_array_length(expression) -%}
  (case when jsonb_typeof({{ expression }}) = 'array' then jsonb_array_length({{ expression }}) else 0 end)
{%- endmacro %}
{% macro bigquery__json_array_length(expression) -%}
  coalesce(array_length(json_query_array({{ expression }})), 0)
{%- endmacro %}
{% macro snowflake__json_array_length(expression) -%}
  coalesce(array_size({{ expression }}), 0)
{%- endmacro %}

{#- A FROM-clause join giving one row per element index of a JSON array: column `<alias>.idx`
    (0-based). Rows whose array is null or empty drop out, as with any inner join. -#}
{% macro join_json_array_indexes(expression, alias) -%}
  {{ return(adapter.dispatch('join_json_array_indexes', 'analytics_assets')(expression, alias)) }}
{%- endmacro %}
{% macro default__join_json_array_indexes(expression, alias) -%}
  cross join lateral generate_series(0, {{ json_array_length(expression) }} - 1) as {{ alias }}(idx)
{%- endmacro %}
{% macro bigquery__join_json_array_indexes(expression, alias) -%}
  cross join unnest(generate_array(0, {{ json_array_length(expression) }} - 1)) as {{ alias }}_idx
{%- endmacro %}

{#- A JSON document as comparable text (to tell whether two versions differ). -#}
{% macro json_as_text(expression) -%}
  {{ return(adapter.dispatch('json_as_text', 'analytics_assets')(expression)) }}
{%- endmacro %}
{% macro default__json_as_text(expression) -%}
  cast({{ expression }} as {{ dbt.type_string() }})
{%- endmacro %}
{% macro bigquery__json_as_text(expression) -%}
  to_json_string({{ expression }})
{%- endmacro %}

{#- Parse a JSON string (treatment configurations arrive as a string holding JSON). -#}
{% macro parse_json(expression) -%}
  {{ return(adapter.dispatch('parse_json', 'analytics_assets')(expression)) }}
{%- endmacro %}
{% macro default__parse_json(expression) -%}
  json({{ expression }})
{%- endmacro %}
{% macro postgres__parse_json(expression) -%}
  cast({{ expression }} as jsonb)
{%- endmacro %}
{% macro bigquery__parse_json(expression) -%}
  safe.parse_json({{ expression }})
{%- endmacro %}
{% macro snowflake__parse_json(expression) -%}
  try_parse_json({{ expression }})
{%- endmacro %}

{#- The JSON type, for typed empty placeholders. -#}
{% macro type_json() -%}
  {{ return(adapter.dispatch('type_json', 'analytics_assets')()) }}
{%- endmacro %}
{% macro default__type_json() -%}json{%- endmacro %}
{% macro postgres__type_json() -%}jsonb{%- endmacro %}
{% macro snowflake__type_json() -%}variant{%- endmacro %}

{#- Element `index` of a JSON array of strings, as text. -#}
{% macro json_text_element(expression, index) -%}
  {{ return(adapter.dispatch('json_text_element', 'analytics_assets')(expression, index)) }}
{%- endmacro %}
{% macro default__json_text_element(expression, index) -%}
  ({{ expression }} ->> cast({{ index }} as integer))
{%- endmacro %}
{% macro bigquery__json_text_element(expression, index) -%}
  json_value({{ expression }}, concat('$[', cast({{ index }} as string), ']'))
{%- endmacro %}
{% macro snowflake__json_text_element(expression, index) -%}
  get({{ expression }}, {{ index }})::string
{%- endmacro %}

{#- The kind of a JSON value, the same word on every adapter: 'string', 'number', 'boolean',
    'array', 'object' or 'null' (SQL null for a missing key). -#}
{% macro json_kind(expression) -%}
  {{ return(adapter.dispatch('json_kind', 'analytics_assets')(expression)) }}
{%- endmacro %}
{% macro default__json_kind(expression) -%}
  (case json_type({{ expression }})
    when 'VARCHAR' then 'string' when 'BOOLEAN' then 'boolean' when 'ARRAY' then 'array'
    when 'OBJECT' then 'object' when 'NULL' then 'null'
    when 'BIGINT' then 'number' when 'UBIGINT' then 'number' when 'DOUBLE' then 'number'
    when 'HUGEINT' then 'number' end)
{%- endmacro %}
{% macro postgres__json_kind(expression) -%}
  jsonb_typeof({{ expression }})
{%- endmacro %}
{% macro bigquery__json_kind(expression) -%}
  json_type({{ expression }})
{%- endmacro %}
{% macro snowflake__json_kind(expression) -%}
  (case typeof({{ expression }}) when 'VARCHAR' then 'string' when 'BOOLEAN' then 'boolean'
    when 'ARRAY' then 'array' when 'OBJECT' then 'object' when 'NULL_VALUE' then 'null'
    when 'INTEGER' then 'number' when 'DOUBLE' then 'number' when 'DECIMAL' then 'number' end)
{%- endmacro %}
