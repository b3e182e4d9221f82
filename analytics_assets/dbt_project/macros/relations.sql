{#- A raw table that dlt creates only once some row has data for it (child tables such as
    feature_flags__owners): the relation when it exists, else an empty typed placeholder, so
    the models build on a new or small organisation. `columns` maps name -> SQL type. -#}
{% macro optional_relation(relation, columns) -%}
  {%- set found = none -%}
  {%- if execute -%}
    {%- set found = adapter.get_relation(relation.database, relation.schema, relation.identifier) -%}
  {%- endif -%}
  {%- if found is not none -%}
    {{ relation }}
  {%- else -%}
    (select {% for name, type in columns.items() %}cast(null as {{ type }}) as {{ adapter.quote(name) if name in ('user', 'timestamp') else name }}{{ ", " if not loop.last }}{% endfor %} where 1 = 0)
  {%- endif -%}
{%- endmacro %}

{#- string_agg with a separator, ordered. -#}
{% macro ordered_string_agg(expression, separator=', ') -%}
  {{ return(adapter.dispatch('ordered_string_agg', 'analytics_assets')(expression, separator)) }}
{%- endmacro %}
{% macro default__ordered_string_agg(expression, separator) -%}
  string_agg({{ expression }}, '{{ separator }}' order by {{ expression }})
{%- endmacro %}
{% macro snowflake__ordered_string_agg(expression, separator) -%}
  listagg({{ expression }}, '{{ separator }}') within group (order by {{ expression }})
{%- endmacro %}
